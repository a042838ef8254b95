"""Settings shared by every service; each service extends them with its own fields."""

from __future__ import annotations

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Read from `BMT_*` environment variables; one process runs one service."""

    model_config = SettingsConfigDict(env_prefix="BMT_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "INFO"
    database_url: SecretStr = SecretStr("")
    db_pool_size: int = 10
    kafka_bootstrap: str = "127.0.0.1:19092"
    # Static membership in the service's consumer group (Kafka's group.instance.id): a process
    # restarted under the same name gets its partitions back at once instead of waiting for the
    # dead one's session to time out. One name per live process (the pod's name in Kubernetes).
    consumer_instance: str | None = None
    # Empty means AWS itself (no endpoint override); the default is the local moto server.
    aws_endpoint: str | None = "http://127.0.0.1:15000"
    aws_region: str = "us-east-1"
    aws_access_key_id: SecretStr = SecretStr("bmt")
    aws_secret_access_key: SecretStr = SecretStr("bmt")
    jwks_url: str = "http://127.0.0.1:18101/.well-known/jwks.json"
    jwt_issuer: str = "bmt-user"
    jwt_audience: str = "bmt"
    max_body_bytes: int = 1024 * 1024

    @field_validator("aws_endpoint")
    @classmethod
    def _empty_endpoint_is_aws(cls, value: str | None) -> str | None:
        return value or None
