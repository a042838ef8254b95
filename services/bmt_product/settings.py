"""The product service's settings (environment variables `BMT_*`)."""

from __future__ import annotations

from pydantic import Field

from bmt_common.settings import ServiceSettings


class ProductSettings(ServiceSettings):
    port: int = 18103
    media_bucket: str = "bmt-media"
    max_image_bytes: int = 5 * 1024 * 1024
    max_video_bytes: int = 100 * 1024 * 1024
    max_body_bytes: int = 110 * 1024 * 1024
    # Hosts a managed film's media may be fetched from (never arbitrary ones: no SSRF).
    media_import_hosts: list[str] = Field(default_factory=lambda: ["127.0.0.1", "localhost"])
    consumer_group: str = "bmt-product"
    media_topic: str = "bmt.media-uploaded"
