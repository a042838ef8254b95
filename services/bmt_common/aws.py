"""AWS for services: one aioboto3 session per process; clients are opened per use."""

from __future__ import annotations

from typing import Any

import aioboto3

from bmt_common.settings import ServiceSettings

_session = aioboto3.Session()


def client(settings: ServiceSettings, service: str) -> Any:
    """An async context manager yielding a client of `service` (s3, sns, sqs, ses)."""
    return _session.client(
        service,
        endpoint_url=settings.aws_endpoint,
        region_name=settings.aws_region,
        aws_access_key_id=settings.aws_access_key_id.get_secret_value(),
        aws_secret_access_key=settings.aws_secret_access_key.get_secret_value(),
    )
