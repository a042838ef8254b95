"""BMT's own services, run as processes of the local platform (`python -m <package>`)."""

from __future__ import annotations

import json
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from bmt_stack.components.base import Component, http_health
from bmt_stack.components.postgres import APP_ROLE
from bmt_stack.config import HOST, PROJECT_ROOT, StackSettings
from bmt_stack.install import recipe_hash

ADMIN_EMAIL = "admin@bmt.local"
SERVICES_DIR = PROJECT_ROOT / "services"


@dataclass(frozen=True)
class Spec:
    name: str
    package: str
    database: str | None
    health: str = "/health/ready"


SPECS = (
    Spec("user", "bmt_user", "bmt_user"),
    Spec("mail", "bmt_mail", "bmt_mail"),
    Spec("product", "bmt_product", "bmt_product"),
    Spec("upload", "bmt_upload", None),
    Spec("showtime", "bmt_showtime", "bmt_showtime"),
    Spec("order", "bmt_order", "bmt_order"),
    Spec("payment", "bmt_payment", "bmt_payment"),
    # The stand-in for VNPay and MoMo: outside the platform, like the real gateways.
    Spec("sandbox", "bmt_sandbox", None),
    Spec("gateway", "bmt_gateway", None),
    # Reconciles the custom resources through the services' APIs (started once they are up).
    Spec("operator", "bmt_operator", None, health="/healthz"),
)
# What clients reach through the gateway.
ROUTED = ("user", "product", "showtime", "order", "payment")


class Secrets:
    """The local platform's secrets, made once under `<state>/secrets` (0600)."""

    def __init__(self, settings: StackSettings) -> None:
        self.dir = settings.secrets

    def _get(self, name: str, make: str) -> str:
        path = self.dir / name
        if not path.exists():
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            path.write_text(make)
            path.chmod(0o600)
        return path.read_text()

    def jwt_private_key(self) -> str:
        if (self.dir / "jwt-ed25519.pem").exists():
            return self._get("jwt-ed25519.pem", "")
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return self._get("jwt-ed25519.pem", pem.decode())

    def otp_pepper(self) -> str:
        return self._get("otp-pepper", secrets.token_urlsafe(32))

    def ticket_key(self) -> str:
        return self._get("ticket-key", secrets.token_urlsafe(32))

    def admin_password(self) -> str:
        return self._get("admin-password", secrets.token_urlsafe(18))

    @property
    def admin_password_file(self) -> Path:
        return self.dir / "admin-password"


class Service(Component):
    start_timeout = 60.0
    needs: tuple[str, ...] = ("postgres", "kafka", "moto")

    def __init__(self, settings: StackSettings, spec: Spec) -> None:
        super().__init__(settings)
        self.spec = spec
        self.name = spec.name
        if spec.name == "operator":
            self.needs = ("apiserver", "user", "product", "showtime", "order")

    @property
    def port(self) -> int:
        port: int = getattr(self.settings, f"port_{self.spec.name}")
        return port

    def command(self) -> list[str]:
        return [sys.executable, "-m", self.spec.package]

    def env(self) -> dict[str, str]:
        s = self.settings
        env = {
            "BMT_HOST": HOST,
            "BMT_PORT": str(self.port),
            "BMT_KAFKA_BOOTSTRAP": f"{HOST}:{s.port_kafka}",
            "BMT_AWS_ENDPOINT": f"http://{HOST}:{s.port_moto}",
            "BMT_JWKS_URL": f"http://{HOST}:{s.port_user}/.well-known/jwks.json",
            # One process per service here: a restart takes its partitions straight back.
            "BMT_CONSUMER_INSTANCE": f"{self.spec.name}-local",
        }
        if self.spec.database:
            password = s.postgres_password.get_secret_value()
            env["BMT_DATABASE_URL"] = (
                f"postgresql://{APP_ROLE}:{password}@{HOST}:{s.port_postgres}/{self.spec.database}"
            )
        keys = Secrets(s)
        if self.spec.name == "user":
            env["BMT_JWT_PRIVATE_KEY"] = keys.jwt_private_key()
            env["BMT_OTP_PEPPER"] = keys.otp_pepper()
            env["BMT_BOOTSTRAP_ADMIN_EMAIL"] = ADMIN_EMAIL
            env["BMT_BOOTSTRAP_ADMIN_PASSWORD"] = keys.admin_password()
        if self.spec.name == "upload":
            env["BMT_MEDIA_BASE_URL"] = f"http://{HOST}:{s.port_moto}"
        product, sandbox = f"http://{HOST}:{s.port_product}", f"http://{HOST}:{s.port_sandbox}"
        gateway = f"http://{HOST}:{s.port_gateway}"
        if self.spec.name in ("showtime", "order"):
            env["BMT_PRODUCT_URL"] = product
        if self.spec.name == "order":
            env["BMT_TICKET_KEY"] = keys.ticket_key()
        if self.spec.name == "payment":
            env["BMT_ORDER_URL"] = f"http://{HOST}:{s.port_order}"
            env["BMT_PUBLIC_URL"] = gateway
            env["BMT_VNPAY_PAY_URL"] = f"{sandbox}/vnpay/paymentv2/vpcpay.html"
            env["BMT_VNPAY_API_URL"] = f"{sandbox}/vnpay/merchant_webapi/api/transaction"
            env["BMT_MOMO_CREATE_URL"] = f"{sandbox}/momo/v2/gateway/api/create"
            env["BMT_MOMO_REFUND_URL"] = f"{sandbox}/momo/v2/gateway/api/refund"
        if self.spec.name == "operator":
            env["KUBECONFIG"] = str(s.kubeconfig)
            env["BMT_METRICS_PORT"] = str(s.port_operator_metrics)
            env["BMT_OPERATOR_PASSWORD"] = keys.admin_password()
            env["BMT_POSTGRES_PASSWORD"] = s.postgres_password.get_secret_value()
            env["BMT_POSTGRES_PORT"] = str(s.port_postgres)
            env["BMT_CONNECT_URL"] = f"http://{HOST}:{s.port_connect}"
            for name in ("user", "product", "showtime", "order"):
                env[f"BMT_{name.upper()}_URL"] = f"http://{HOST}:{getattr(s, f'port_{name}')}"
        if self.spec.name == "sandbox":
            # VNPay calls the merchant's IPN address, set once per merchant: the gateway that
            # runs, the host's or the local cluster's.
            if s.cluster_mode_file.exists():
                gateway = s.cluster_gateway
            env["BMT_VNPAY_IPN_URL"] = f"{gateway}/v1/payments/vnpay/ipn"
        if self.spec.name == "gateway":
            env["BMT_UPSTREAMS"] = json.dumps(
                {name: f"http://{HOST}:{getattr(s, f'port_{name}')}" for name in ROUTED}
            )
            # Local only: lets tests and benchmarks act as many clients from one machine.
            env["BMT_TRUST_FORWARDED_FOR"] = "true"
        return env

    def health(self) -> str | None:
        return http_health(self.port, self.spec.health)

    @property
    def code_file(self) -> Path:
        return self.settings.run / f"{self.name}.code"

    def code_hash(self) -> str:
        """The service's code and the shared library's: a change means a restart on `up`."""
        package = SERVICES_DIR / self.spec.package
        if not package.exists():
            package = PROJECT_ROOT / "operator" / self.spec.package
        return recipe_hash(package, SERVICES_DIR / "bmt_common")

    def up(self) -> str:
        code = self.code_hash()
        if (
            self.pid() is not None
            and self.code_file.exists()
            and self.code_file.read_text() != code
        ):
            self.down()
            super().up()
            self.code_file.write_text(code)
            return "restarted (code changed)"
        outcome = super().up()
        self.code_file.write_text(code)
        return outcome


def service_components(settings: StackSettings) -> list[Component]:
    return [Service(settings, spec) for spec in SPECS]
