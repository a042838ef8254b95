"""Where the stack keeps its state and cache, and the ports it binds (all on 127.0.0.1)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RECIPES = PROJECT_ROOT / "stack" / "recipes"
HOST = "127.0.0.1"

# The local cluster's node lives in a network namespace of its own, joined to the host by a veth
# pair. The stack's processes stay on loopback; the host side of the pair offers the few that a
# cluster uses as managed services (stack/bmt_stack/components/node.py).
NODE_NETNS = "bmt-node"
NODE_HOST_SIDE = "10.233.0.1"  # the host as pods and the node see it
NODE_IP = "10.233.0.2"  # the node's InternalIP: NodePorts, the kubelet
NODE_LINK = "10.233.0.0/24"
POD_CIDR = "10.234.0.0/24"
SERVICE_CIDR = "10.0.0.0/24"
CLUSTER_DNS = "10.0.0.10"
KUBERNETES_SERVICE_IP = "10.0.0.1"


def _default_cache() -> Path:
    # Outside the clone on purpose: builds are reused by every clone on the machine (CI included).
    return Path.home() / ".cache" / "bmt"


class StackSettings(BaseSettings):
    """Every field can be set with an environment variable, e.g. `BMT_PORT_KAFKA=29092`."""

    model_config = SettingsConfigDict(env_prefix="BMT_")

    state_dir: Path = Field(default=PROJECT_ROOT / ".bmt")
    cache_dir: Path = Field(default_factory=_default_cache)

    port_postgres: int = 55432
    port_kafka: int = 19092
    port_kafka_controller: int = 19093
    # The listener pods use (advertised as the node network's host side).
    port_kafka_node: int = 19094
    port_connect: int = 18083
    port_moto: int = 15000
    port_etcd: int = 12379
    port_etcd_peer: int = 12380
    port_apiserver: int = 16443
    port_controller_manager: int = 10257
    port_gateway: int = 18080
    port_user: int = 18101
    port_mail: int = 18102
    port_product: int = 18103
    port_upload: int = 18104
    port_showtime: int = 18105
    port_order: int = 18106
    port_payment: int = 18107
    port_sandbox: int = 18109
    port_operator: int = 18110
    port_operator_metrics: int = 18111
    # The cluster's gateway, a NodePort on the node's address.
    port_cluster_gateway: int = 30080

    postgres_password: SecretStr = SecretStr("bmt")

    kafka_heap: str = "512m"
    connect_heap: str = "512m"

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run(self) -> Path:
        return self.state_dir / "run"

    @property
    def data(self) -> Path:
        return self.state_dir / "data"

    @property
    def secrets(self) -> Path:
        return self.state_dir / "secrets"

    @property
    def cluster_mode_file(self) -> Path:
        """Present while BMT runs as pods of the local cluster (`bmt cluster up`) rather than as
        processes of the host (`bmt up`)."""
        return self.run / "cluster-mode"

    @property
    def cluster_gateway(self) -> str:
        return f"http://{NODE_IP}:{self.port_cluster_gateway}"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    def ensure_dirs(self) -> None:
        for path in (self.logs, self.run, self.data, self.cache_dir):
            path.mkdir(parents=True, exist_ok=True)
