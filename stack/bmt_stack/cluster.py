"""`bmt cluster up`: BMT the way it ships, as pods of a real single-node cluster, installed by
`helm upgrade --install` of helm/bmt with the image built on this machine.

The node (components/node.py) registers with the stack's own API server, so one `kubectl` sees
the catalogue resources and the pods alike. PostgreSQL, Kafka, Connect, moto and the payment
sandbox stay the stack's processes, as managed services outside a cluster are. The cluster takes
the platform over: the host's service processes stop (two sets of consumers would share the
work) and `bmt up` hands it back (`leave`).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path

from bmt_operator.provision import Plan
from bmt_stack import demo, images, install, platform
from bmt_stack.components.kube import NODE_NAME
from bmt_stack.components.node import Containerd, coredns_bin
from bmt_stack.components.services import SPECS, Secrets, service_components
from bmt_stack.config import PROJECT_ROOT, StackSettings

RELEASE = "bmt"
NAMESPACE = "bmt"
CHART = PROJECT_ROOT / "helm" / "bmt"
LOCAL_VALUES = CHART / "ci" / "local-values.yaml"
ADDONS = PROJECT_ROOT / "stack" / "cluster"


def _tool(settings: StackSettings, name: str, *args: str, timeout: float = 900) -> str:
    result = subprocess.run(
        [str(settings.state_dir / "bin" / name), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "KUBECONFIG": str(settings.kubeconfig)},
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{name} {' '.join(args)}: {(result.stderr or result.stdout).strip()}")
    return result.stdout


def kubectl(settings: StackSettings, *args: str, timeout: float = 300) -> str:
    return _tool(settings, "kubectl", *args, timeout=timeout)


def helm(settings: StackSettings, *args: str, timeout: float = 900) -> str:
    return _tool(settings, "helm", *args, timeout=timeout)


def active(settings: StackSettings) -> bool:
    return settings.cluster_mode_file.exists()


def _restart_sandbox(settings: StackSettings) -> None:
    """The sandbox calls back the gateway of the mode it was started in."""
    for service in service_components(settings):
        if service.name == "sandbox":
            service.down()
            service.up()


def take_over(settings: StackSettings) -> None:
    """Stop the host's service processes (all but the payment sandbox) and mark cluster mode."""
    for service in service_components(settings):
        if service.name != "sandbox":
            service.down()
    settings.cluster_mode_file.write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
    _restart_sandbox(settings)


def leave(settings: StackSettings) -> None:
    """Hand the platform back to the host: uninstall the release (the CRDs and data stay)."""
    if not active(settings):
        return
    install.say("==> leaving cluster mode: helm uninstall of the release")
    if RELEASE in helm(settings, "list", "-n", NAMESPACE, "-q"):
        helm(settings, "uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", "3m")
    settings.cluster_mode_file.unlink()
    _restart_sandbox(settings)


def build_images(settings: StackSettings) -> dict[str, images.Image]:
    """The node's images, built here (cached by content) and loaded into its containerd."""
    cache = settings.cache_dir
    base = images.base_image(cache)
    built = {
        "bmt": images.bmt_image(cache, PROJECT_ROOT, base),
        "pause": images.pause_image(cache),
        "coredns": images.coredns_image(cache, coredns_bin(settings)),
    }
    with install.step("loading the images into the node's containerd"):
        images.load(list(built.values()), Containerd(settings).ctr())
    return built


def wait_node_ready(settings: StackSettings, timeout: float = 120) -> None:
    kubectl(
        settings, "wait", "--for=condition=Ready", f"node/{NODE_NAME}", f"--timeout={timeout:.0f}s"
    )


def _secrets_values(settings: StackSettings) -> Path:
    """The host's keys and admin password for the release: one platform, whichever mode runs."""
    keys = Secrets(settings)
    values = {
        "auth": {
            "jwtPrivateKey": keys.jwt_private_key(),
            "otpPepper": keys.otp_pepper(),
            "ticketKey": keys.ticket_key(),
            "bootstrapAdmin": {"password": keys.admin_password()},
        },
        "postgres": {"password": settings.postgres_password.get_secret_value()},
    }
    path = settings.secrets / "cluster-values.json"
    path.write_text(json.dumps(values))
    path.chmod(0o600)
    return path


def helm_install(settings: StackSettings, tag: str, *extra: str) -> str:
    """`helm upgrade --install` of the chart with this machine's values; waits for every pod."""
    return helm(
        settings,
        "upgrade",
        "--install",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--create-namespace",
        "-f",
        str(LOCAL_VALUES),
        "-f",
        str(_secrets_values(settings)),
        "--set",
        f"image.tag={tag}",
        "--wait",
        "--timeout",
        "10m",
        *extra,
    )


def current_tag(settings: StackSettings) -> str:
    """The image tag the release runs."""
    values = json.loads(helm(settings, "get", "values", RELEASE, "-n", NAMESPACE, "-o", "json"))
    return str(values["image"]["tag"])


def install_platform(settings: StackSettings) -> list[tuple[str, BaseException]]:
    """With the stack and the node up: images, add-ons, the release, its data (idempotent)."""
    failures: list[tuple[str, BaseException]] = []
    try:
        built = build_images(settings)
        with install.step("waiting for the node to be Ready"):
            wait_node_ready(settings)
        platform.kubectl_apply(settings, ADDONS)
        kubectl(settings, "-n", "kube-system", "rollout", "status", "deploy/coredns")
        print("provisioning topics and the S3 -> SNS -> SQS media wiring", flush=True)
        asyncio.run(platform.provision(settings, Plan()))
        platform.kubectl_apply(settings, PROJECT_ROOT / "crds")
        with install.step(f"helm upgrade --install {RELEASE} (image {built['bmt'].ref})"):
            helm_install(settings, built["bmt"].ref.rsplit(":", 1)[1])
        databases = [spec.database for spec in SPECS if spec.database]
        asyncio.run(platform.ensure_connectors(settings, databases))
        asyncio.run(platform.upload_example_media(settings))
        print("seeding the demo catalogue through the cluster's gateway", flush=True)
        asyncio.run(demo.seed(settings, settings.cluster_gateway))
        platform.kubectl_apply(settings, PROJECT_ROOT / "examples")
    except (RuntimeError, OSError, subprocess.TimeoutExpired, demo.DemoError) as exc:
        failures.append(("cluster set-up", exc))
    return failures


def pods_table(settings: StackSettings) -> str:
    try:
        return kubectl(settings, "get", "nodes,pods", "-A", "-o", "wide", timeout=15)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        return f"(no answer from the API server: {exc})"
