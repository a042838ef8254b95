"""The local platform's bootstrap: what the operator's Platform resource provisions, done once
by `bmt up` before any service starts, with the same idempotent functions."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

from bmt_operator.provision import (
    Endpoints,
    Plan,
    aws,
    ensure_mail_sender,
    ensure_media_wiring,
    ensure_topics,
)
from bmt_operator.provision import ensure_connectors as _ensure_connectors
from bmt_stack.config import HOST, PROJECT_ROOT, StackSettings


def endpoints(settings: StackSettings) -> Endpoints:
    return Endpoints(
        kafka_bootstrap=f"{HOST}:{settings.port_kafka}",
        connect_url=f"http://{HOST}:{settings.port_connect}",
        aws_endpoint=f"http://{HOST}:{settings.port_moto}",
        aws_region="us-east-1",
        # moto checks no credentials; they only have to exist.
        aws_access_key_id="bmt",
        aws_secret_access_key="bmt",  # noqa: S106
        postgres_host=HOST,
        postgres_port=settings.port_postgres,
        postgres_user="bmt",
        postgres_password=settings.postgres_password.get_secret_value(),
    )


async def provision(settings: StackSettings, plan: Plan) -> None:
    where = endpoints(settings)
    await asyncio.gather(
        ensure_topics(where, plan),
        ensure_media_wiring(where, plan.media),
        ensure_mail_sender(where, plan.mail_sender),
    )


async def ensure_connectors(settings: StackSettings, databases: list[str]) -> None:
    await _ensure_connectors(endpoints(settings), databases)


def kubectl_apply(settings: StackSettings, path: Path) -> str:
    """`kubectl apply -f path` against the local API server; returns what kubectl said."""
    result = subprocess.run(
        [str(settings.state_dir / "bin" / "kubectl"), "apply", "-f", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "KUBECONFIG": str(settings.kubeconfig)},
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl apply -f {path}: {result.stderr.strip()}")
    return result.stdout


async def upload_example_media(settings: StackSettings) -> None:
    """The example films' media, where examples/films.yaml points (bmt-media/examples/)."""
    async with aws(endpoints(settings), "s3") as s3:
        for file in sorted((PROJECT_ROOT / "examples" / "media").iterdir()):
            await s3.put_object(
                Bucket="bmt-media", Key=f"examples/{file.name}", Body=file.read_bytes()
            )
