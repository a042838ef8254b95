"""The operator's settings (environment variables `BMT_*`)."""

from __future__ import annotations

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BMT_", extra="ignore")

    # The owning services: every write goes through their APIs, with an admin's token.
    user_url: str = "http://127.0.0.1:18101"
    product_url: str = "http://127.0.0.1:18103"
    showtime_url: str = "http://127.0.0.1:18105"
    order_url: str = "http://127.0.0.1:18106"
    operator_email: str = "admin@bmt.local"
    operator_password: SecretStr = SecretStr("")
    # What a Platform resource provisions.
    kafka_bootstrap: str = "127.0.0.1:19092"
    connect_url: str = "http://127.0.0.1:18083"
    # Empty means AWS itself (no endpoint override); the default is the local moto server.
    aws_endpoint: str | None = "http://127.0.0.1:15000"
    aws_region: str = "us-east-1"
    aws_access_key_id: SecretStr = SecretStr("bmt")
    aws_secret_access_key: SecretStr = SecretStr("bmt")
    # How Debezium reaches the service databases.
    postgres_host: str = "127.0.0.1"
    postgres_port: int = 55432
    postgres_user: str = "bmt"
    postgres_password: SecretStr = SecretStr("")
    # Drift: how often the world is compared with the spec (override per resource with the
    # annotation bmt.dev/drift-interval-seconds); status counters refresh at the same pace.
    drift_seconds: float = 30.0
    timer_tick_seconds: float = 5.0
    retry_seconds: float = 5.0
    log_level: str = "INFO"
    # Several replicas (the chart sets it when operator.replicas > 1): Kopf runs only in the one
    # holding this coordination.k8s.io Lease of the pod's namespace (leader.py). Off for the
    # single host-mode operator of the local stack.
    leader_election: bool = False
    leader_lease: str = "bmt-operator"

    @field_validator("aws_endpoint")
    @classmethod
    def _empty_endpoint_is_aws(cls, value: str | None) -> str | None:
        return value or None
