"""The upload service's settings (environment variables `BMT_*`)."""

from __future__ import annotations

from bmt_common.settings import ServiceSettings


class UploadSettings(ServiceSettings):
    port: int = 18104
    media_queue: str = "bmt-media-uploads"
    # Only objects of this bucket are media: a notification of another bucket is not ours.
    media_bucket: str = "bmt-media"
    # Public address of stored media: `<media_base_url>/<bucket>/<key>`.
    media_base_url: str = "http://127.0.0.1:15000"
    media_topic: str = "bmt.media-uploaded"
    poll_seconds: int = 10
