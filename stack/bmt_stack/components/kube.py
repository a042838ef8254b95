"""A real Kubernetes control plane: etcd, kube-apiserver and kube-controller-manager, plus kubectl
and helm, built once from the Go module proxy and cached. Without a node it behaves like envtest;
the local cluster's node (components/node.py) registers with this same API server."""

from __future__ import annotations

import datetime
import ipaddress
import re
import secrets
import shutil
import ssl
import subprocess
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

from bmt_stack import install
from bmt_stack.components.base import Component, http_health
from bmt_stack.config import (
    HOST,
    KUBERNETES_SERVICE_IP,
    NODE_HOST_SIDE,
    RECIPES,
    SERVICE_CIDR,
    StackSettings,
)

KUBE_PACKAGES = (
    "k8s.io/kubernetes/cmd/kube-apiserver",
    "k8s.io/kubernetes/cmd/kube-controller-manager",
)
KUBECTL_PACKAGE = "k8s.io/kubernetes/cmd/kubectl"
ETCD_PACKAGE = "go.etcd.io/etcd/server/v3"
HELM = "helm.sh/helm/v3/cmd/helm@v3.19.5"
# Bumped when the PKI gains a credential or a name, or the control plane's flags change: the keys
# are made again and a running API server and controller-manager restart with them (ApiServer.up).
PKI_GENERATION = "3"
# The node's name; its daemons sign in as the users Kubernetes bootstraps roles for
# (system:node:<name> through the Node authorizer, system:kube-proxy, system:kube-scheduler).
NODE_NAME = "bmt-node"


def server_minor() -> int:
    text = (RECIPES / "kube" / "go.mod").read_text()
    found = re.search(r"k8s\.io/kubernetes v1\.(\d+)\.", text)
    assert found, "recipes/kube/go.mod must require k8s.io/kubernetes"
    return int(found.group(1))


class Pki:
    """The control plane's keys and certificates, made once under the state folder."""

    def __init__(self, settings: StackSettings) -> None:
        self.dir = settings.state_dir / "pki"
        self.ca_crt = self.dir / "ca.crt"
        self.ca_key = self.dir / "ca.key"
        self.server_crt = self.dir / "apiserver.crt"
        self.server_key = self.dir / "apiserver.key"
        self.sa_key = self.dir / "sa.key"
        self.sa_pub = self.dir / "sa.pub"
        self.tokens = self.dir / "tokens.csv"
        self.admin_token_file = self.dir / "admin.token"
        self.kcm_token_file = self.dir / "controller-manager.token"
        # The API server's client certificate towards kubelets (logs, exec, port-forward).
        self.kubelet_client_crt = self.dir / "apiserver-kubelet-client.crt"
        self.kubelet_client_key = self.dir / "apiserver-kubelet-client.key"
        self.generation_file = self.dir / "generation"

    def token(self, user: str) -> str:
        """The static token of one of the node's daemons: kubelet, kube-proxy, kube-scheduler."""
        return (self.dir / f"{user}.token").read_text()

    def ensure(self) -> None:
        if self.generation_file.exists() and self.generation_file.read_text() == PKI_GENERATION:
            return
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        now = datetime.datetime.now(datetime.UTC)
        ten_years = now + datetime.timedelta(days=3650)

        def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
            path.write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            path.chmod(0o600)

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bmt-local-ca")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(ten_years)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )
        server_key = ec.generate_private_key(ec.SECP256R1())
        server = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(ca_name)
            .public_key(server_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(ten_years)
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        # Loopback for the host, the node network's host side for the node, the
                        # `kubernetes` Service for pods.
                        *(
                            x509.IPAddress(ipaddress.ip_address(ip))
                            for ip in (HOST, NODE_HOST_SIDE, KUBERNETES_SERVICE_IP)
                        ),
                        x509.DNSName("localhost"),
                        *(
                            x509.DNSName(name)
                            for name in (
                                "kubernetes",
                                "kubernetes.default",
                                "kubernetes.default.svc",
                                "kubernetes.default.svc.cluster.local",
                            )
                        ),
                    ]
                ),
                critical=False,
            )
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        write_key(ca_key, self.ca_key)
        self.ca_crt.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        write_key(server_key, self.server_key)
        self.server_crt.write_bytes(server.public_bytes(serialization.Encoding.PEM))
        sa_key = ec.generate_private_key(ec.SECP256R1())
        write_key(sa_key, self.sa_key)
        self.sa_pub.write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        client_key = ec.generate_private_key(ec.SECP256R1())
        client = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                        x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver-kubelet-client"),
                    ]
                )
            )
            .issuer_name(ca_name)
            .public_key(client_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(ten_years)
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        write_key(client_key, self.kubelet_client_key)
        self.kubelet_client_crt.write_bytes(client.public_bytes(serialization.Encoding.PEM))
        # token,user,uid,"groups": static tokens, the simplest real authentication there is.
        users = {
            "admin": ("bmt-admin", "system:masters"),
            "controller-manager": ("system:kube-controller-manager", "system:masters"),
            "kubelet": (f"system:node:{NODE_NAME}", "system:nodes"),
            "kube-proxy": ("system:kube-proxy", ""),
            "kube-scheduler": ("system:kube-scheduler", ""),
        }
        lines = []
        for name, (user, groups) in users.items():
            token = secrets.token_urlsafe(32)
            lines.append(f'{token},{user},{name},"{groups}"\n')
            token_file = self.dir / f"{name}.token"
            token_file.write_text(token)
            token_file.chmod(0o600)
        self.tokens.write_text("".join(lines))
        self.tokens.chmod(0o600)
        self.generation_file.write_text(PKI_GENERATION)

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_crt))


def write_kubeconfig(path: Path, server: str, ca: Path, token: str) -> None:
    import base64

    ca_data = base64.b64encode(ca.read_bytes()).decode()
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: bmt
  cluster:
    server: {server}
    certificate-authority-data: {ca_data}
users:
- name: bmt
  user:
    token: {token}
contexts:
- name: bmt
  context:
    cluster: bmt
    user: bmt
    namespace: default
current-context: bmt
"""
    )
    path.chmod(0o600)


def kube_bin(settings: StackSettings) -> Path:
    return install.go_build(settings.cache_dir, "kube", KUBE_PACKAGES)


class Etcd(Component):
    name = "etcd"
    start_timeout = 60.0

    @property
    def port(self) -> int:
        return self.settings.port_etcd

    def install(self) -> None:
        bin_dir = install.go_build(self.settings.cache_dir, "etcd", [ETCD_PACKAGE])
        self.binary = bin_dir / install.binary_name(ETCD_PACKAGE)

    def command(self) -> list[str]:
        client = f"http://{HOST}:{self.port}"
        peer = f"http://{HOST}:{self.settings.port_etcd_peer}"
        return [
            str(self.binary),
            "--name=bmt",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=bmt={peer}",
            # Local and test use only, like envtest: no fsync per write.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]

    def health(self) -> str | None:
        return http_health(self.port, "/health")


class ApiServer(Component):
    name = "apiserver"
    start_timeout = 90.0
    needs = ("etcd",)

    @property
    def port(self) -> int:
        return self.settings.port_apiserver

    @cached_property
    def pki(self) -> Pki:
        return Pki(self.settings)

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.port}"

    def install(self) -> None:
        self.bin = kube_bin(self.settings)

    def prepare(self) -> None:
        self.pki.ensure()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        write_kubeconfig(
            self.settings.kubeconfig,
            self.url,
            self.pki.ca_crt,
            self.pki.admin_token_file.read_text(),
        )

    def command(self) -> list[str]:
        pki = self.pki
        return [
            str(self.bin / "kube-apiserver"),
            f"--etcd-servers=http://{HOST}:{self.settings.port_etcd}",
            f"--bind-address={HOST}",
            # What the `kubernetes` Service points pods at: the node network's host side, which
            # leads to this loopback port (NodeNetwork offers it).
            f"--advertise-address={NODE_HOST_SIDE}",
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-client-certificate={pki.kubelet_client_crt}",
            f"--kubelet-client-key={pki.kubelet_client_key}",
            f"--secure-port={self.port}",
            f"--cert-dir={self.data_dir}",
            f"--tls-cert-file={pki.server_crt}",
            f"--tls-private-key-file={pki.server_key}",
            f"--client-ca-file={pki.ca_crt}",
            f"--token-auth-file={pki.tokens}",
            # Node: the kubelet may read what its own pods use, no more (with NodeRestriction).
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--service-account-issuer={self.url}",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            "--v=1",
        ]

    def up(self) -> str:
        self.pki.ensure()
        return up_with_current_pki(self, lambda: super(ApiServer, self).up())

    def health(self) -> str | None:
        if not self.pki.admin_token_file.exists():
            return "no credentials yet"
        token = self.pki.admin_token_file.read_text()
        return http_health(
            self.port,
            "/readyz",
            tls=self.pki.tls_context(),
            headers={"Authorization": f"Bearer {token}"},
        )


def up_with_current_pki(component: Component, up: Callable[[], str]) -> str:
    """Start `component`, first stopping it if it runs with keys of an older PKI generation."""
    in_use = component.settings.run / f"{component.name}.pki"
    if component.pid() is not None and (
        not in_use.exists() or in_use.read_text() != PKI_GENERATION
    ):
        component.down()
    outcome = up()
    in_use.write_text(PKI_GENERATION)
    return outcome


class ControllerManager(Component):
    name = "controller-manager"
    start_timeout = 60.0
    needs = ("apiserver",)

    @property
    def port(self) -> int:
        return self.settings.port_controller_manager

    def install(self) -> None:
        self.bin = kube_bin(self.settings)

    def up(self) -> str:
        return up_with_current_pki(self, lambda: super(ControllerManager, self).up())

    def prepare(self) -> None:
        pki = Pki(self.settings)
        self.kubeconfig = self.settings.state_dir / "controller-manager.kubeconfig"
        write_kubeconfig(
            self.kubeconfig,
            f"https://{HOST}:{self.settings.port_apiserver}",
            pki.ca_crt,
            pki.kcm_token_file.read_text(),
        )
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        pki = Pki(self.settings)
        return [
            str(self.bin / "kube-controller-manager"),
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            # Kubernetes' default controllers: with the node up, Deployments, Jobs, Endpoints
            # and disruption budgets work as in any cluster; without it, pods just wait.
            "--controllers=*",
            # Each controller acts as its own service account (as kubeadm runs it).
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki.sa_key}",
            f"--root-ca-file={pki.ca_crt}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--leader-elect=false",
            f"--bind-address={HOST}",
            f"--secure-port={self.port}",
            f"--cert-dir={self.data_dir}",
            "--v=1",
        ]

    def health(self) -> str | None:
        # Its serving certificate is self-signed by the process itself: nothing to verify against.
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        return http_health(self.port, "/healthz", tls=insecure)


class Tools:
    """kubectl and helm: not processes, binaries linked into `<state>/bin`."""

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.bin = settings.state_dir / "bin"

    def kubectl(self) -> Path:
        installed = shutil.which("kubectl")
        if installed and _kubectl_minor(installed) in range(server_minor() - 1, server_minor() + 2):
            return Path(installed)
        # No kubectl within one minor of the server: build the server's own.
        return install.go_build(self.settings.cache_dir, "kube", [KUBECTL_PACKAGE]) / "kubectl"

    def helm(self) -> Path:
        return install.go_install(self.settings.cache_dir, "helm", HELM) / "helm"

    def install(self) -> dict[str, Path]:
        self.bin.mkdir(parents=True, exist_ok=True)
        found = {"kubectl": self.kubectl(), "helm": self.helm()}
        for name, target in found.items():
            link = self.bin / name
            link.unlink(missing_ok=True)
            link.symlink_to(target)
        return found


def _kubectl_minor(binary: str) -> int:
    out = subprocess.run(
        [binary, "version", "--client", "-o", "json"], capture_output=True, text=True, check=False
    ).stdout
    found = re.search(r'"minor":\s*"(\d+)', out)
    return int(found.group(1)) if found else -1
