"""The local cluster's node: containerd, the kubelet, kube-proxy and kube-scheduler, registered with
the stack's own API server (components/kube.py), so `kubectl` sees one cluster.

Everything of the node runs in a network namespace of the project's own, joined to the host by a
veth pair (NodeNetwork): pods, the CNI bridge and kube-proxy's rules live there, and `bmt down`
removes the namespace with all of it. The stack's processes stay on loopback; the host side of the
pair offers the few a cluster uses as managed services (PostgreSQL, Kafka, Connect, moto, the
payment sandbox and the API server) by DNAT to loopback, and nothing else listens.

Daemons are started with `nsenter --net=...`, not `ip netns exec`: the latter remounts /sys and
hides the cgroup file system the kubelet and runc need.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
from pathlib import Path

from bmt_stack import install, process
from bmt_stack.components.base import Component, http_health
from bmt_stack.components.kube import NODE_NAME, Pki, up_with_current_pki, write_kubeconfig
from bmt_stack.config import (
    CLUSTER_DNS,
    NODE_HOST_SIDE,
    NODE_IP,
    NODE_LINK,
    NODE_NETNS,
    POD_CIDR,
    StackSettings,
)
from bmt_stack.images import PAUSE_REF

NODE_PACKAGES = (
    "k8s.io/kubernetes/cmd/kubelet",
    "k8s.io/kubernetes/cmd/kube-scheduler",
    "k8s.io/kubernetes/cmd/kube-proxy",
)
COREDNS = "github.com/coredns/coredns@v1.12.1"
DEBIAN_PACKAGES = ("containerd", "runc", "containernetworking-plugins", "iptables", "conntrack")
CNI_BIN = Path("/usr/lib/cni")
NETNS_PATH = Path("/run/netns") / NODE_NETNS
HOST_LINK = "bmt0"
OFFER_CHAIN = "BMT-NODE-OFFER"
PAUSE_IMAGE = PAUSE_REF


def node_bin(settings: StackSettings) -> Path:
    return install.go_build(settings.cache_dir, "node", NODE_PACKAGES)


def coredns_bin(settings: StackSettings) -> Path:
    return install.go_install(settings.cache_dir, "coredns", COREDNS, static=True) / "coredns"


def in_node(argv: list[str]) -> list[str]:
    return ["nsenter", f"--net={NETNS_PATH}", "--", *argv]


def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise process.StartError(f"{' '.join(argv)}: {(result.stderr or result.stdout).strip()}")
    return result


def ensure_debian_packages() -> None:
    if shutil.which("containerd") and shutil.which("runc") and (CNI_BIN / "bridge").exists():
        return
    install.apt_install(DEBIAN_PACKAGES)


class NodeNetwork:
    """The node's namespace, its veth pair and the host's offer of the stack's ports."""

    def __init__(self, settings: StackSettings) -> None:
        s = settings
        self.offered = (
            s.port_postgres,
            s.port_kafka_node,
            s.port_connect,
            s.port_moto,
            s.port_apiserver,
            s.port_sandbox,
        )

    @staticmethod
    def present() -> bool:
        return NETNS_PATH.exists()

    def ensure(self) -> None:
        if not NETNS_PATH.exists():
            _run(["ip", "netns", "add", NODE_NETNS])
        if _run(["ip", "link", "show", HOST_LINK], check=False).returncode != 0:
            pair = ["type", "veth", "peer", "name", "eth0", "netns", NODE_NETNS]
            _run(["ip", "link", "add", HOST_LINK, *pair])
        prefix = NODE_LINK.split("/")[1]
        _run(["ip", "addr", "replace", f"{NODE_HOST_SIDE}/{prefix}", "dev", HOST_LINK])
        _run(["ip", "link", "set", HOST_LINK, "up"])
        for argv in (
            ["ip", "link", "set", "lo", "up"],
            ["ip", "addr", "replace", f"{NODE_IP}/{prefix}", "dev", "eth0"],
            ["ip", "link", "set", "eth0", "up"],
            ["ip", "route", "replace", "default", "via", NODE_HOST_SIDE],
            # Pods reach Services through the bridge: its frames must pass kube-proxy's rules.
            ["sysctl", "-qw", "net.ipv4.ip_forward=1"],
            ["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"],
        ):
            _run(in_node(argv))
        # DNAT to loopback from another interface needs route_localnet on that interface.
        Path(f"/proc/sys/net/ipv4/conf/{HOST_LINK}/route_localnet").write_text("1")
        self._offer()

    def _offer(self) -> None:
        nat = ["iptables", "-w", "-t", "nat"]
        _run([*nat, "-N", OFFER_CHAIN], check=False)
        _run([*nat, "-F", OFFER_CHAIN])
        ports = ",".join(str(p) for p in self.offered)
        to_loopback = ["-j", "DNAT", "--to-destination", "127.0.0.1"]
        _run(
            [
                *nat,
                "-A",
                OFFER_CHAIN,
                "-p",
                "tcp",
                "-m",
                "multiport",
                "--dports",
                ports,
                *to_loopback,
            ]
        )
        for jump in self._jumps():
            if _run([*nat, "-C", *jump], check=False).returncode != 0:
                _run([*nat, "-A", *jump])

    @staticmethod
    def _jumps() -> list[list[str]]:
        return [
            ["PREROUTING", "-i", HOST_LINK, "-d", NODE_HOST_SIDE, "-j", OFFER_CHAIN],
            ["OUTPUT", "-d", NODE_HOST_SIDE, "-j", OFFER_CHAIN],
        ]

    def remove(self) -> None:
        nat = ["iptables", "-w", "-t", "nat"]
        for jump in self._jumps():
            while _run([*nat, "-D", *jump], check=False).returncode == 0:
                pass
        _run([*nat, "-F", OFFER_CHAIN], check=False)
        _run([*nat, "-X", OFFER_CHAIN], check=False)
        _run(["ip", "link", "del", HOST_LINK], check=False)
        if NETNS_PATH.exists():
            _run(["ip", "netns", "del", NODE_NETNS], check=False)


class NodeComponent(Component):
    """A daemon of the node: started inside its network namespace."""

    host = NODE_IP
    signs_in = True  # with a token of the PKI: restarted when the PKI is made again

    def up(self) -> str:
        if not self.signs_in:
            return super().up()
        return up_with_current_pki(self, lambda: super(NodeComponent, self).up())

    @property
    def node_dir(self) -> Path:
        return self.settings.data / "node"

    def kubeconfig_for(self, user: str) -> Path:
        pki = Pki(self.settings)
        path = self.node_dir / f"{user}.kubeconfig"
        self.node_dir.mkdir(parents=True, exist_ok=True)
        server = f"https://{NODE_HOST_SIDE}:{self.settings.port_apiserver}"
        write_kubeconfig(path, server, pki.ca_crt, pki.token(user))
        return path


class Containerd(NodeComponent):
    name = "containerd"
    signs_in = False
    start_timeout = 30.0

    @property
    def port(self) -> int:
        return 0

    @property
    def socket(self) -> Path:
        return self.settings.run / "containerd" / "containerd.sock"

    @property
    def state(self) -> Path:
        return self.settings.run / "containerd" / "state"

    @property
    def cni_conf_dir(self) -> Path:
        return self.node_dir / "cni" / "net.d"

    @property
    def ipam_dir(self) -> Path:
        return self.settings.run / "containerd" / "ipam"

    def ctr(self) -> list[str]:
        return ["ctr", "--address", str(self.socket), "--namespace", "k8s.io"]

    def install(self) -> None:
        ensure_debian_packages()

    def prepare(self) -> None:
        NodeNetwork(self.settings).ensure()
        for folder in (self.data_dir, self.state, self.cni_conf_dir, self.socket.parent):
            folder.mkdir(parents=True, exist_ok=True)
        (self.cni_conf_dir / "10-bmt.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": "bmt-pods",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": "cni0",
                            "isGateway": True,
                            "ipMasq": True,
                            "hairpinMode": True,
                            "ipam": {
                                "type": "host-local",
                                "ranges": [[{"subnet": POD_CIDR}]],
                                "routes": [{"dst": "0.0.0.0/0"}],
                                "dataDir": str(self.ipam_dir),
                            },
                        },
                        {"type": "portmap", "capabilities": {"portMappings": True}},
                    ],
                },
                indent=2,
            )
        )
        cri = '[plugins."io.containerd.grpc.v1.cri"]'
        (self.node_dir / "containerd.toml").write_text(
            f"""version = 2
root = "{self.data_dir}"
state = "{self.state}"
[grpc]
  address = "{self.socket}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{self.data_dir / "opt"}"
{cri}
  sandbox_image = "{PAUSE_IMAGE}"
  # This machine lacks CAP_SYS_RESOURCE: runc may not lower a process's OOM score adjustment.
  restrict_oom_score_adj = true
  disable_apparmor = true
  netns_mounts_under_state_dir = true
{cri[:-1]}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
{cri[:-1]}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
{cri[:-1]}.containerd.runtimes.runc.options]
  SystemdCgroup = false
{cri[:-1]}.cni]
  bin_dir = "{CNI_BIN}"
  conf_dir = "{self.cni_conf_dir}"
"""
        )

    def command(self) -> list[str]:
        return in_node(["containerd", "--config", str(self.node_dir / "containerd.toml")])

    def health(self) -> str | None:
        result = _run([*self.ctr(), "version"], check=False)
        return None if result.returncode == 0 else "not answering on its socket"


class Kubelet(NodeComponent):
    name = "kubelet"
    start_timeout = 60.0
    needs = ("containerd", "apiserver")

    @property
    def port(self) -> int:
        return 10248  # healthz, on the node's address

    @property
    def root_dir(self) -> Path:
        return self.settings.data / "kubelet"

    @property
    def pod_logs(self) -> Path:
        return self.settings.data / "pod-logs"

    def install(self) -> None:
        self.bin = node_bin(self.settings)

    def prepare(self) -> None:
        self.kubeconfig = self.kubeconfig_for("kubelet")
        self.root_dir.mkdir(parents=True, exist_ok=True)
        self.pod_logs.mkdir(parents=True, exist_ok=True)
        # No upstream resolver exists for pods: the cluster DNS answers cluster names only.
        resolv = self.node_dir / "resolv.conf"
        resolv.write_text("# the local cluster has no upstream DNS\n")
        socket = Containerd(self.settings).socket
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": NODE_IP,
            "healthzBindAddress": NODE_IP,
            "healthzPort": self.port,
            "readOnlyPort": 0,
            "containerRuntimeEndpoint": f"unix://{socket}",
            "cgroupDriver": "cgroupfs",
            "failCgroupV1": False,
            "failSwapOn": False,
            "clusterDNS": [CLUSTER_DNS],
            "clusterDomain": "cluster.local",
            "resolvConf": str(resolv),
            "podLogsDir": str(self.pod_logs),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(Pki(self.settings).ca_crt)},
            },
            "authorization": {"mode": "Webhook"},
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "serializeImagePulls": False,
        }
        self.config = self.node_dir / "kubelet.json"
        self.config.write_text(json.dumps(config, indent=2))

    def command(self) -> list[str]:
        return in_node(
            [
                str(self.bin / "kubelet"),
                f"--config={self.config}",
                f"--kubeconfig={self.kubeconfig}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={NODE_IP}",
                f"--root-dir={self.root_dir}",
                "--v=1",
            ]
        )

    def health(self) -> str | None:
        return http_health(self.port, "/healthz", host=NODE_IP)


class KubeProxy(NodeComponent):
    name = "kube-proxy"
    start_timeout = 60.0
    needs = ("kubelet",)

    @property
    def port(self) -> int:
        return 10256

    def install(self) -> None:
        self.bin = node_bin(self.settings)

    def prepare(self) -> None:
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(self.kubeconfig_for("kube-proxy"))},
            "mode": "iptables",
            "clusterCIDR": POD_CIDR,
            "hostnameOverride": NODE_NAME,
            "bindAddress": NODE_IP,
            "healthzBindAddress": f"{NODE_IP}:{self.port}",
            "metricsBindAddress": f"{NODE_IP}:10249",
            "nodePortAddresses": [f"{NODE_IP}/32"],
            # The node shares the host's conntrack limits, which a container may not change.
            "conntrack": {"maxPerCore": 0, "min": 0},
        }
        self.config = self.node_dir / "kube-proxy.json"
        self.config.write_text(json.dumps(config, indent=2))

    def command(self) -> list[str]:
        return in_node([str(self.bin / "kube-proxy"), f"--config={self.config}", "--v=1"])

    def health(self) -> str | None:
        return http_health(self.port, "/healthz", host=NODE_IP)


class Scheduler(NodeComponent):
    name = "kube-scheduler"
    start_timeout = 60.0
    needs = ("apiserver",)

    @property
    def port(self) -> int:
        return 10259

    def install(self) -> None:
        self.bin = node_bin(self.settings)

    def prepare(self) -> None:
        NodeNetwork(self.settings).ensure()
        self.kubeconfig = self.kubeconfig_for("kube-scheduler")
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return in_node(
            [
                str(self.bin / "kube-scheduler"),
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                f"--bind-address={NODE_IP}",
                f"--secure-port={self.port}",
                f"--cert-dir={self.data_dir}",
                "--leader-elect=false",
                "--v=1",
            ]
        )

    def health(self) -> str | None:
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        return http_health(self.port, "/healthz", tls=insecure, host=NODE_IP)


def node_components(settings: StackSettings) -> list[Component]:
    kinds: list[type[Component]] = [Containerd, Kubelet, KubeProxy, Scheduler]
    return [kind(settings) for kind in kinds]


def teardown(settings: StackSettings) -> list[str]:
    """Stop the node and take away everything it made on the host: containers and their shims,
    mounts, cgroups, log links, the network. Safe to run when nothing of it is left."""
    done: list[str] = []
    components = node_components(settings)
    for component in reversed(components[1:]):
        if component.down():
            done.append(f"{component.name} stopped")
    killed = _kill_pods()
    containerd = components[0]
    if containerd.down():
        done.append("containerd stopped")
    killed += _kill_shims(Containerd(settings).socket)
    if killed:
        done.append(f"{killed} container processes and shims killed")
    unmounted = _unmount_under(settings.state_dir)
    if unmounted:
        done.append(f"{unmounted} mounts removed")
    _remove_cgroups()
    _remove_log_links(settings.data / "pod-logs")
    shutil.rmtree(Containerd(settings).ipam_dir, ignore_errors=True)
    if NodeNetwork.present():
        NodeNetwork(settings).remove()
        done.append("node network removed")
    return done


def _kubepods_cgroups() -> list[Path]:
    """Every cgroup the kubelet made (cgroupfs driver: `kubepods` under each hierarchy)."""
    found: list[Path] = []
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        top = hierarchy / "kubepods"
        if top.is_dir():
            found.extend(sorted((p for p in top.rglob("*") if p.is_dir()), reverse=True))
            found.append(top)
    return found


def _kill_pods() -> int:
    pids: set[int] = set()
    for group in _kubepods_cgroups():
        with contextlib.suppress(OSError):
            pids.update(int(p) for p in (group / "cgroup.procs").read_text().split())
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait_for(lambda: not any(Path(f"/proc/{p}").exists() for p in pids), 10.0)
    return len(pids)


def _kill_shims(socket: Path) -> int:
    """containerd leaves its shims running by design; ours are known by the address they serve."""
    shims = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                if b"containerd-shim" in argv[0] and str(socket).encode() in argv:
                    shims.append(int(entry.name))
    for pid in shims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait_for(lambda: not any(Path(f"/proc/{p}").exists() for p in shims), 10.0)
    return len(shims)


def _unmount_under(root: Path) -> int:
    prefix = str(root.resolve()) + "/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefix):
            points.append(point)
    # Deepest first; lazy as a last resort for a mount still busy for a moment.
    for point in sorted(set(points), key=lambda p: p.count("/"), reverse=True):
        if _run(["umount", point], check=False).returncode != 0:
            _run(["umount", "-l", point], check=False)
    return len(set(points))


def _remove_cgroups() -> None:
    for group in _kubepods_cgroups():
        with contextlib.suppress(OSError):
            group.rmdir()


def _remove_log_links(pod_logs: Path) -> None:
    """The kubelet links every container's log into /var/log/containers (a fixed path)."""
    links = Path("/var/log/containers")
    if not links.is_dir():
        return
    for link in links.iterdir():
        with contextlib.suppress(OSError):
            if link.is_symlink() and str(os.readlink(link)).startswith(str(pod_logs)):
                link.unlink()
