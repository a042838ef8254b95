"""The gateway's settings (environment variables `BMT_*`)."""

from __future__ import annotations

from pydantic import Field

from bmt_common.events import outbox_topic
from bmt_common.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    port: int = 18080
    # Service name -> base URL; each serves /openapi.json, which tells the gateway its routes.
    upstreams: dict[str, str] = Field(
        default_factory=lambda: {
            "user": "http://127.0.0.1:18101",
            "product": "http://127.0.0.1:18103",
        }
    )
    routes_refresh_seconds: float = 30.0
    upstream_timeout_seconds: float = 30.0
    # Token buckets per client: a steady rate per second and a burst.
    rate_per_second: float = 50.0
    rate_burst: int = 100
    # Stricter for the routes that take passwords and codes (per client and route).
    auth_rate_per_minute: float = 20.0
    auth_burst: int = 10
    # Behind a trusted proxy or ingress, the client is the first X-Forwarded-For address.
    trust_forwarded_for: bool = False
    max_body_bytes: int = 110 * 1024 * 1024
    # Ended sessions are read from the user service's events and refused for as long as an
    # access token of theirs can live (the user service's access_token_minutes, and a margin).
    user_topic: str = outbox_topic("bmt_user")
    revoked_sessions_seconds: float = 11 * 60
