"""The Helm chart (helm/bmt): lint, render, schema refusals, CRD copies, and a real install.

`helm install` goes to the local stack's kube-apiserver. No kubelet runs there, so no pod ever
starts: the test checks the objects, never their pods, and never uses `--wait`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bmt_common import migrate_all
from bmt_common.app import create_app
from bmt_common.settings import ServiceSettings
from bmt_operator.settings import OperatorSettings
from bmt_stack.components.services import SPECS, Service, Spec
from bmt_stack.config import HOST, NODE_HOST_SIDE, NODE_IP, PROJECT_ROOT, StackSettings

CHART = PROJECT_ROOT / "helm" / "bmt"
PRODUCTION = CHART / "ci" / "production-values.yaml"
LOCAL = CHART / "ci" / "local-values.yaml"
SYNC_CRDS = PROJECT_ROOT / "helm" / "sync_crds.py"
SERVICES = {
    "gateway": 18080,
    "user": 18101,
    "mail": 18102,
    "product": 18103,
    "upload": 18104,
    "showtime": 18105,
    "order": 18106,
    "payment": 18107,
}
# What one release renders, whatever the values (kind -> count; None: at least one).
KINDS: dict[str, int | None] = {
    "Deployment": 9,
    "Service": 8,
    "PodDisruptionBudget": 8,
    "HorizontalPodAutoscaler": 8,
    "Ingress": 1,
    "Job": 1,
    "ClusterRole": 1,
    "ClusterRoleBinding": 1,
    "ServiceAccount": 2,
    "ConfigMap": None,
    "Secret": None,
    "Platform": 1,
}
VALUES = {"default": None, "production": PRODUCTION}


def run(
    stack: StackSettings, tool: str, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(stack.state_dir / "bin" / tool), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "KUBECONFIG": str(stack.kubeconfig)},
        timeout=180,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{tool} {' '.join(args)} failed:\n{result.stderr}")
    return result


def helm(stack: StackSettings, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(stack, "helm", *args, check=check)


def kubectl(
    stack: StackSettings, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return run(stack, "kubectl", *args, stdin=stdin, check=check)


def values_args(values: Path | None) -> list[str]:
    return ["-f", str(values)] if values else []


def render(stack: StackSettings, *args: str) -> list[dict[str, Any]]:
    out = helm(stack, "template", "bmt", str(CHART), "--namespace", "bmt", *args).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


# --- lint and template ---------------------------------------------------------------------


@pytest.mark.parametrize("values", VALUES.values(), ids=VALUES.keys())
def test_helm_lint_passes(stack: StackSettings, values: Path | None) -> None:
    result = helm(stack, "lint", str(CHART), "--strict", *values_args(values))
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values", VALUES.values(), ids=VALUES.keys())
def test_template_renders_every_kind(stack: StackSettings, values: Path | None) -> None:
    docs = render(stack, *values_args(values))
    kinds = Counter(d["kind"] for d in docs)
    for kind, count in KINDS.items():
        if count is None:
            assert kinds[kind] >= 1, f"no {kind} rendered"
        else:
            assert kinds[kind] == count, f"{kinds[kind]} {kind} rendered, want {count}"
    deployments = by_kind(docs, "Deployment")
    assert set(deployments) == {f"bmt-{name}" for name in SERVICES} | {"bmt-operator"}
    platform = by_kind(docs, "Platform")["bmt"]
    assert platform["apiVersion"] == "bmt.dev/v1alpha1"
    assert platform["spec"]["deletionPolicy"] == "Retain"
    assert platform["spec"]["connectors"]["databases"] == [
        "bmt_user",
        "bmt_mail",
        "bmt_product",
        "bmt_showtime",
        "bmt_order",
        "bmt_payment",
    ]
    assert set(platform["spec"]["media"]) == {
        "bucket",
        "snsTopic",
        "queue",
        "deadLetterQueue",
        "maxReceives",
    }


def test_services_are_wired_like_the_local_stack_with_cluster_names(stack: StackSettings) -> None:
    docs = render(stack)
    deployments = by_kind(docs, "Deployment")
    config = by_kind(docs, "ConfigMap")
    services = by_kind(docs, "Service")
    common = config["bmt-common"]["data"]
    assert common["BMT_HOST"] == "0.0.0.0"  # noqa: S104 (a pod listens on its own address)
    assert common["BMT_JWKS_URL"] == "http://bmt-user:18101/.well-known/jwks.json"
    for name, port in SERVICES.items():
        pod = deployments[f"bmt-{name}"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["command"] == ["python", "-m", f"bmt_{name}"]
        assert container["ports"][0]["containerPort"] == port
        assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
        assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        assert container["resources"]["requests"]
        assert container["resources"]["limits"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert config[f"bmt-{name}"]["data"]["BMT_PORT"] == str(port)
        assert services[f"bmt-{name}"]["spec"]["ports"][0]["port"] == port
        env = {e["name"]: e for e in container.get("env") or []}
        if name in ("gateway", "upload"):
            assert "BMT_DATABASE_URL" not in env
        else:
            assert env["BMT_DATABASE_URL"]["value"] == (
                f"postgresql://bmt:$(BMT_POSTGRES_PASSWORD)@postgres:5432/bmt_{name}"
            )
            assert "secretKeyRef" in env["BMT_POSTGRES_PASSWORD"]["valueFrom"]
    upstreams = json.loads(config["bmt-gateway"]["data"]["BMT_UPSTREAMS"])
    assert upstreams == {
        name: f"http://bmt-{name}:{SERVICES[name]}"
        for name in ("user", "product", "showtime", "order", "payment")
    }
    assert config["bmt-order"]["data"]["BMT_PRODUCT_URL"] == "http://bmt-product:18103"
    assert config["bmt-payment"]["data"]["BMT_ORDER_URL"] == "http://bmt-order:18106"
    assert config["bmt-payment"]["data"]["BMT_PUBLIC_URL"] == "http://bmt.local"
    user_env = {
        e["name"]
        for e in deployments["bmt-user"]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert {"BMT_JWT_PRIVATE_KEY", "BMT_OTP_PEPPER"} <= user_env
    operator = deployments["bmt-operator"]["spec"]
    assert operator["replicas"] == 1
    assert operator["strategy"] == {"type": "Recreate"}  # one operator, no election
    assert "Role" not in {d["kind"] for d in docs}
    (container,) = operator["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "bmt_operator"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert not {"BMT_LEADER_ELECTION", "POD_NAME"} & {e["name"] for e in container["env"]}
    assert config["bmt-operator"]["data"]["BMT_CONNECT_URL"] == "http://kafka-connect:8083"
    assert config["bmt-operator"]["data"]["BMT_SHOWTIME_URL"] == "http://bmt-showtime:18105"
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert env["BMT_OPERATOR_PASSWORD"] == {"name": "bmt-auth", "key": "admin-password"}
    assert env["BMT_POSTGRES_PASSWORD"] == {"name": "bmt-postgres", "key": "postgres-password"}
    rules = by_kind(docs, "ClusterRole")["bmt-bmt-operator"]["rules"]
    assert {
        "apiGroups": ["bmt.dev"],
        "resources": [
            "platforms/status",
            "cinemas/status",
            "films/status",
            "showtimes/status",
        ],
        "verbs": ["patch", "update"],
    } in rules
    assert not any("kopf.dev" in rule["apiGroups"] for rule in rules)
    job = by_kind(docs, "Job")["bmt-migrations"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "python",
        "-m",
        "bmt_common.migrate_all",
    ]


def test_production_values_scale_out_and_use_existing_secrets(stack: StackSettings) -> None:
    docs = render(stack, "-f", str(PRODUCTION))
    for hpa in by_kind(docs, "HorizontalPodAutoscaler").values():
        assert hpa["spec"]["minReplicas"] >= 2
    for name, deployment in by_kind(docs, "Deployment").items():
        if name != "bmt-operator":  # the autoscaler owns the count
            assert "replicas" not in deployment["spec"]
    ingress = by_kind(docs, "Ingress")["bmt-gateway"]
    assert ingress["spec"]["tls"] == [
        {"hosts": ["tickets.example.com"], "secretName": "tickets-example-com-tls"}
    ]
    secrets = set(by_kind(docs, "Secret"))
    assert not secrets & {"bmt-postgres", "bmt-aws", "bmt-auth", "bmt-migrations"}
    env = by_kind(docs, "Deployment")["bmt-order"]["spec"]["template"]["spec"]["containers"][0][
        "env"
    ]
    sources = {e["name"]: e["valueFrom"] for e in env if "valueFrom" in e}
    refs = {
        name: ref["secretKeyRef"]["name"] for name, ref in sources.items() if "secretKeyRef" in ref
    }
    assert refs == {"BMT_POSTGRES_PASSWORD": "bmt-postgres", "BMT_TICKET_KEY": "bmt-auth"}
    # Each replica is its own static member of the consumer group: named after its pod.
    assert sources["BMT_CONSUMER_INSTANCE"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_per_service_switches_override_the_defaults(stack: StackSettings) -> None:
    docs = render(
        stack,
        "--set",
        "services.mail.hpa.enabled=false",
        "--set",
        "services.mail.pdb.enabled=false",
        "--set",
        "services.mail.replicas=0",
        "--set",
        "services.order.hpa.maxReplicas=7",
    )
    assert "bmt-mail" not in by_kind(docs, "HorizontalPodAutoscaler")
    assert "bmt-mail" not in by_kind(docs, "PodDisruptionBudget")
    assert by_kind(docs, "Deployment")["bmt-mail"]["spec"]["replicas"] == 0
    order = by_kind(docs, "HorizontalPodAutoscaler")["bmt-order"]["spec"]
    assert (order["minReplicas"], order["maxReplicas"]) == (1, 7)


LEADER_RULES = [
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "resourceNames": ["bmt-operator"],
        "verbs": ["get", "update", "patch"],
    },
]


def leader_parts(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The operator Deployment's spec and its container's env by name."""
    operator = by_kind(docs, "Deployment")["bmt-operator"]["spec"]
    (container,) = operator["template"]["spec"]["containers"]
    return operator, {e["name"]: e for e in container["env"]}


def test_two_operators_elect_a_leader_over_a_lease(stack: StackSettings) -> None:
    docs = render(stack, "--set", "operator.replicas=2")
    operator, env = leader_parts(docs)
    assert operator["replicas"] == 2
    assert operator["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    assert env["BMT_LEADER_ELECTION"] == {"name": "BMT_LEADER_ELECTION", "value": "true"}
    assert env["BMT_LEADER_LEASE"] == {"name": "BMT_LEADER_LEASE", "value": "bmt-operator"}
    for name, field in (("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")):
        assert env[name]["valueFrom"] == {"fieldRef": {"fieldPath": field}}
    assert by_kind(docs, "Role")["bmt-operator-leader"]["rules"] == LEADER_RULES
    binding = by_kind(docs, "RoleBinding")["bmt-operator-leader"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "bmt-operator-leader",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "bmt-operator", "namespace": "bmt"}
    ]
    budgets = by_kind(docs, "PodDisruptionBudget")
    assert set(budgets) == {f"bmt-{name}" for name in SERVICES} | {"bmt-operator"}
    assert budgets["bmt-operator"]["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": operator["selector"]["matchLabels"]},
    }


def test_one_operator_may_elect_too_for_upgrades_without_a_gap(stack: StackSettings) -> None:
    docs = render(stack, "--set", "operator.leaderElection.enabled=true")
    operator, env = leader_parts(docs)
    assert operator["replicas"] == 1
    assert operator["strategy"]["type"] == "RollingUpdate"
    assert env["BMT_LEADER_ELECTION"]["value"] == "true"
    assert by_kind(docs, "Role")["bmt-operator-leader"]["rules"] == LEADER_RULES
    assert "bmt-operator" not in by_kind(docs, "PodDisruptionBudget")  # would block every drain


# --- this machine's local cluster (ci/local-values.yaml) ----------------------------------


def local_args(tag: str = "0123abcd") -> list[str]:
    return ["-f", str(LOCAL), "--set", f"image.tag={tag}"]


def test_helm_lint_passes_with_the_local_values(stack: StackSettings) -> None:
    result = helm(stack, "lint", str(CHART), "--strict", *local_args())
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_local_values_run_the_imported_image_small_and_without_autoscalers(
    stack: StackSettings,
) -> None:
    docs = render(stack, *local_args("5e73fc508059"))
    kinds = Counter(d["kind"] for d in docs)
    # No metrics-server, no Ingress controller; the Platform comes from examples/platform.yaml.
    assert kinds["HorizontalPodAutoscaler"] == kinds["Ingress"] == kinds["Platform"] == 0
    deployments = by_kind(docs, "Deployment")
    pods = [d["spec"]["template"]["spec"] for d in deployments.values()]
    pods.append(by_kind(docs, "Job")["bmt-migrations"]["spec"]["template"]["spec"])
    for pod in pods:
        (container,) = pod["containers"]
        assert container["image"] == "localhost/bmt:5e73fc508059"
        assert container["imagePullPolicy"] == "Never"  # imported into containerd, never pulled
    replicas = {name: d["spec"]["replicas"] for name, d in deployments.items()}
    assert replicas == {
        **{f"bmt-{name}": 1 for name in SERVICES},
        "bmt-gateway": 2,
        "bmt-order": 2,
        "bmt-operator": 2,
    }
    # Every service has its budget; with two replicas the gateway's and the order service's
    # keep one pod through a drain.
    budgets = by_kind(docs, "PodDisruptionBudget")
    assert {f"bmt-{name}" for name in SERVICES} <= set(budgets)
    assert all(budgets[f"bmt-{name}"]["spec"]["maxUnavailable"] == 1 for name in SERVICES)
    # What the pods ask for fits a node of 2 cores and 24 GiB with room for its daemons.
    requests_cpu = requests_mem = 0.0
    for d in deployments.values():
        (container,) = d["spec"]["template"]["spec"]["containers"]
        requests_cpu += d["spec"]["replicas"] * cpu(container["resources"]["requests"]["cpu"])
        requests_mem += d["spec"]["replicas"] * mib(container["resources"]["requests"]["memory"])
        assert mib(container["resources"]["limits"]["memory"]) <= 512
    assert requests_cpu <= 1.0
    assert requests_mem <= 4 * 1024


def cpu(quantity: str | int | float) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def mib(quantity: str) -> float:
    units = {"Mi": 1.0, "Gi": 1024.0, "Ki": 1 / 1024}
    return float(quantity[:-2]) * units[quantity[-2:]]


def test_local_values_reach_the_stack_on_the_host_side_of_the_node(
    stack: StackSettings, tmp_path: Path
) -> None:
    """The endpoints are the stack's ports on 10.233.0.1, the payment sandbox's paths those of
    the host-mode stack (components/services.py), the public URL the cluster's gateway."""
    host_side = NODE_HOST_SIDE
    docs = render(stack, *local_args())
    config = {name: cm["data"] for name, cm in by_kind(docs, "ConfigMap").items()}
    common, operator = config["bmt-common"], config["bmt-operator"]
    assert common["BMT_KAFKA_BOOTSTRAP"] == f"{host_side}:{stack.port_kafka_node}"
    assert common["BMT_AWS_ENDPOINT"] == f"http://{host_side}:{stack.port_moto}"
    assert config["bmt-upload"]["BMT_MEDIA_BASE_URL"] == f"http://{host_side}:{stack.port_moto}"
    assert operator["BMT_CONNECT_URL"] == f"http://{host_side}:{stack.port_connect}"
    # Debezium's database.hostname: Kafka Connect runs on the host, and reaches it there.
    assert (operator["BMT_POSTGRES_HOST"], operator["BMT_POSTGRES_PORT"]) == (
        host_side,
        str(stack.port_postgres),
    )
    deployments = by_kind(docs, "Deployment")
    (user,) = deployments["bmt-user"]["spec"]["template"]["spec"]["containers"]
    url = next(e["value"] for e in user["env"] if e["name"] == "BMT_DATABASE_URL")
    assert (
        url
        == f"postgresql://bmt:$(BMT_POSTGRES_PASSWORD)@{host_side}:{stack.port_postgres}/bmt_user"
    )

    payment = config["bmt-payment"]
    assert payment["BMT_PUBLIC_URL"] == stack.cluster_gateway
    host_mode = Service(StackSettings(state_dir=tmp_path), spec_of("payment")).env()
    sandbox = f"http://{HOST}:{stack.port_sandbox}"
    for key in (
        "BMT_VNPAY_PAY_URL",
        "BMT_VNPAY_API_URL",
        "BMT_MOMO_CREATE_URL",
        "BMT_MOMO_REFUND_URL",
    ):
        assert host_mode[key].startswith(sandbox)
        assert payment[key] == host_mode[key].replace(
            sandbox, f"http://{host_side}:{stack.port_sandbox}"
        )

    gateway = by_kind(docs, "Service")["bmt-gateway"]["spec"]
    assert gateway["type"] == "NodePort"
    assert gateway["ports"][0]["nodePort"] == stack.port_cluster_gateway
    assert stack.cluster_gateway == f"http://{NODE_IP}:{stack.port_cluster_gateway}"
    others = [s for n, s in by_kind(docs, "Service").items() if n != "bmt-gateway"]
    assert {s["spec"]["type"] for s in others} == {"ClusterIP"}
    assert not any("nodePort" in p for s in others for p in s["spec"]["ports"])


def test_the_local_gateway_notes_name_the_node_port(stack: StackSettings, unique: str) -> None:
    out = helm(
        stack,
        "install",
        f"bmt-{unique}",
        str(CHART),
        "-n",
        f"notes-{unique}",
        "--dry-run=client",
        *local_args(),
    ).stdout
    notes = out.split("NOTES:", 1)[1]
    assert "http://10.233.0.2:30080/docs   (NodePort Service" in notes
    assert "node port 30080" in notes
    assert "neither publicUrl nor the Ingress" not in notes


def test_without_a_public_url_or_ingress_the_notes_warn(stack: StackSettings, unique: str) -> None:
    out = helm(
        stack,
        "install",
        f"bmt-{unique}",
        str(CHART),
        "-n",
        f"notes-{unique}",
        "--dry-run=client",
        "--set",
        "ingress.enabled=false",
    ).stdout
    assert "WARNING: neither publicUrl nor the Ingress is set" in out.split("NOTES:", 1)[1]


# --- what a real cluster runs -------------------------------------------------------------


def test_the_gateway_service_is_a_cluster_ip_unless_told(stack: StackSettings) -> None:
    default = by_kind(render(stack), "Service")["bmt-gateway"]["spec"]
    assert default["type"] == "ClusterIP"
    assert "nodePort" not in default["ports"][0]
    any_port = by_kind(render(stack, "--set", "gatewayService.type=NodePort"), "Service")
    assert any_port["bmt-gateway"]["spec"]["type"] == "NodePort"
    assert "nodePort" not in any_port["bmt-gateway"]["spec"]["ports"][0]  # Kubernetes picks
    balanced = by_kind(
        render(
            stack,
            "--set",
            "gatewayService.type=LoadBalancer",
            "--set",
            "gatewayService.nodePort=31000",
        ),
        "Service",
    )
    assert balanced["bmt-gateway"]["spec"]["type"] == "LoadBalancer"
    assert balanced["bmt-gateway"]["spec"]["ports"][0]["nodePort"] == 31000
    assert balanced["bmt-user"]["spec"]["type"] == "ClusterIP"


def spec_of(name: str) -> Spec:
    return next(spec for spec in SPECS if spec.name == name)


def pod_env(docs: list[dict[str, Any]], deployment: str) -> set[str]:
    """Every variable a Deployment's container gets: its env and its ConfigMaps' keys."""
    config = by_kind(docs, "ConfigMap")
    (container,) = by_kind(docs, "Deployment")[deployment]["spec"]["template"]["spec"]["containers"]
    names = {e["name"] for e in container.get("env") or []}
    for source in container.get("envFrom") or []:
        names |= set(config[source["configMapRef"]["name"]]["data"])
    return names


@pytest.mark.parametrize("values", VALUES.values(), ids=VALUES.keys())
def test_every_variable_the_host_stack_sets_is_set_by_the_chart(
    stack: StackSettings, values: Path | None, tmp_path: Path
) -> None:
    """components/services.py starts the services on the host and is known to work: each of
    its variables has a value in the pods too (KUBECONFIG aside: in a pod the operator uses its
    ServiceAccount). The sandbox is the payment gateways' stand-in, not part of the chart."""
    docs = render(stack, *values_args(values))
    host = StackSettings(state_dir=tmp_path)  # keys made in tmp_path, not the stack's
    for spec in SPECS:
        if spec.name == "sandbox":
            continue
        wanted = set(Service(host, spec).env()) - {"KUBECONFIG"}
        if spec.name == "operator":
            # Set for every host process alike; the operator reads no consumer settings.
            assert "consumer_instance" not in OperatorSettings.model_fields
            wanted.discard("BMT_CONSUMER_INSTANCE")
        missing = wanted - pod_env(docs, f"bmt-{spec.name}")
        assert not missing, f"{spec.name}: the chart does not set {sorted(missing)}"


def test_probes_ask_for_routes_the_processes_serve(stack: StackSettings) -> None:
    """The services' probes are bmt_common.health's routes on the named container port;
    the operator's is Kopf's liveness endpoint on BMT_PORT."""
    app = create_app("probe", None, verifier=None, max_body_bytes=1024)
    served = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    docs = render(stack)
    for name, deployment in by_kind(docs, "Deployment").items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        probes = [
            container[k]
            for k in ("startupProbe", "livenessProbe", "readinessProbe")
            if k in container
        ]
        assert probes, name
        for probe in probes:
            get = probe["httpGet"]
            assert get["port"] in ports, f"{name}: probe on an unnamed port {get['port']}"
            if name == "bmt-operator":
                assert get["path"] == "/healthz"
                assert ports[get["port"]] == int(
                    by_kind(docs, "ConfigMap")["bmt-operator"]["data"]["BMT_PORT"]
                )
            else:
                assert get["path"] in served, f"{name}: {get['path']} is not served"
    operator_main = (PROJECT_ROOT / "operator" / "bmt_operator" / "__main__.py").read_text()
    assert 'liveness_endpoint=f"http://{host}:{port}/healthz"' in operator_main


def test_services_send_to_the_container_ports(stack: StackSettings) -> None:
    docs = render(stack, *local_args())
    deployments = by_kind(docs, "Deployment")
    for name, service in by_kind(docs, "Service").items():
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        (port,) = service["spec"]["ports"]
        assert port["targetPort"] in ports
        assert ports[port["targetPort"]] == port["port"]
        selector = service["spec"]["selector"]
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()


@pytest.mark.parametrize(
    "values", [None, PRODUCTION, LOCAL], ids=["default", "production", "local"]
)
def test_every_pod_runs_on_a_read_only_root_with_a_writable_tmp(
    stack: StackSettings, values: Path
) -> None:
    docs = render(stack, *values_args(values), "--set", "image.tag=t")
    config = by_kind(docs, "ConfigMap")
    pods = {n: d["spec"]["template"]["spec"] for n, d in by_kind(docs, "Deployment").items()}
    pods["job"] = by_kind(docs, "Job")["bmt-migrations"]["spec"]["template"]["spec"]
    for name, pod in pods.items():
        (container,) = pod["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["securityContext"]["runAsNonRoot"] is True
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        assert "emptyDir" in volume, name
        env = {e["name"]: e.get("value") for e in container.get("env") or []}
        for source in container.get("envFrom") or []:
            env.update(config[source["configMapRef"]["name"]]["data"])
        assert env.get("PYTHONDONTWRITEBYTECODE") == "1", name


def test_only_the_operator_gets_an_api_token(stack: StackSettings) -> None:
    docs = render(stack)
    accounts = by_kind(docs, "ServiceAccount")
    assert accounts["bmt"]["automountServiceAccountToken"] is False
    assert accounts["bmt-operator"].get("automountServiceAccountToken", True) is True
    for name, deployment in by_kind(docs, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        if name == "bmt-operator":
            assert pod["serviceAccountName"] == "bmt-operator"
            assert pod.get("automountServiceAccountToken", True) is True  # Kopf needs the API
        else:
            assert pod["serviceAccountName"] == "bmt"
            assert pod["automountServiceAccountToken"] is False
    job = by_kind(docs, "Job")["bmt-migrations"]["spec"]["template"]["spec"]
    assert job["automountServiceAccountToken"] is False


def test_pods_keep_serving_while_their_endpoints_are_removed(stack: StackSettings) -> None:
    for name, deployment in by_kind(render(stack), "Deployment").items():
        if name == "bmt-operator":
            continue
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert 0 < pause < pod["terminationGracePeriodSeconds"] - 10, name


def test_an_empty_aws_endpoint_means_aws_itself(stack: StackSettings) -> None:
    """Unset, BMT_AWS_ENDPOINT would leave the settings at the local stack's moto."""
    docs = render(stack, "--set", "aws.endpoint=")
    value = by_kind(docs, "ConfigMap")["bmt-common"]["data"]["BMT_AWS_ENDPOINT"]
    assert value == ""
    assert ServiceSettings(aws_endpoint=value).aws_endpoint is None
    assert OperatorSettings(aws_endpoint=value).aws_endpoint is None


def test_connect_may_reach_postgres_elsewhere_than_the_services(stack: StackSettings) -> None:
    default = by_kind(render(stack), "ConfigMap")["bmt-operator"]["data"]
    assert (default["BMT_POSTGRES_HOST"], default["BMT_POSTGRES_PORT"]) == ("postgres", "5432")
    docs = render(
        stack,
        "--set",
        "kafkaConnect.postgresHost=pg.example.com",
        "--set",
        "kafkaConnect.postgresPort=6432",
    )
    operator = by_kind(docs, "ConfigMap")["bmt-operator"]["data"]
    assert (operator["BMT_POSTGRES_HOST"], operator["BMT_POSTGRES_PORT"]) == (
        "pg.example.com",
        "6432",
    )
    (user,) = by_kind(docs, "Deployment")["bmt-user"]["spec"]["template"]["spec"]["containers"]
    url = next(e["value"] for e in user["env"] if e["name"] == "BMT_DATABASE_URL")
    assert "@postgres:5432/" in url  # the services still use postgres.host


def expand(env: list[dict[str, Any]], secrets: dict[str, str]) -> dict[str, str]:
    """A container's env as Kubernetes gives it: secretKeyRefs read, $(VAR) of earlier ones
    expanded."""
    out: dict[str, str] = {}
    for entry in env:
        if "valueFrom" in entry:
            out[entry["name"]] = secrets[entry["valueFrom"]["secretKeyRef"]["key"]]
            continue
        value = entry["value"]
        for name, known in out.items():
            value = value.replace(f"$({name})", known)
        out[entry["name"]] = value
    return out


def test_the_migrations_job_names_what_migrate_all_migrates(stack: StackSettings) -> None:
    docs = render(stack, *local_args())
    (container,) = by_kind(docs, "Job")["bmt-migrations"]["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "bmt_common.migrate_all"]
    env = expand(container["env"], {"postgres-password": "pw"})
    owners = {spec.name for spec in SPECS if spec.database}
    chosen = migrate_all.targets(env)
    assert {t.service for t in chosen} == owners
    for target in chosen:
        assert target.dsn == (
            f"postgresql://bmt:pw@{NODE_HOST_SIDE}:{stack.port_postgres}/bmt_{target.service}"
        )
        assert (
            target.migrations == PROJECT_ROOT / "services" / f"bmt_{target.service}" / "migrations"
        )


# --- values that break the schema ----------------------------------------------------------

WRONG = {
    "wrong-type": (
        {"services": {"user": {"port": 18101, "hpa": {"maxReplicas": "many"}}}},
        ["/services/user/hpa/maxReplicas", "want integer"],
    ),
    "unknown-key": (
        {"services": {"order": {"port": 18106, "colour": "red"}}},
        ["/services/order", "additional properties 'colour' not allowed"],
    ),
    "unknown-top-level-key": ({"replicaCount": 3}, ["'replicaCount' not allowed"]),
    "negative-replicas": (
        {"serviceDefaults": {"replicas": -1}},
        ["/serviceDefaults/replicas", "minimum: got -1"],
    ),
    "bad-enum": (
        {"platform": {"deletionPolicy": "Keep"}},
        ["/platform/deletionPolicy", "'Delete', 'Retain'"],
    ),
    "bad-log-level": ({"logLevel": "LOUD"}, ["/logLevel"]),
    "negative-operators": ({"operator": {"replicas": -1}}, ["/operator/replicas", "minimum"]),
    "leader-election-not-a-switch": (
        {"operator": {"leaderElection": {"enabled": "yes"}}},
        ["/operator/leaderElection/enabled", "want boolean"],
    ),
    "bad-bucket-name": (
        {"platform": {"media": {"bucket": "Not_A_Bucket"}}},
        ["/platform/media/bucket"],
    ),
    "no-database-password": (
        {"postgres": {"password": "", "existingSecret": ""}},
        ["/postgres/password", "minLength"],
    ),
    "env-not-a-setting": (
        {"services": {"gateway": {"port": 18080, "env": {"PATH": "/evil"}}}},
        ["/services/gateway/env", "additional properties 'PATH' not allowed"],
    ),
    "hpa-min-above-max": (
        {"services": {"order": {"port": 18106, "hpa": {"minReplicas": 9, "maxReplicas": 3}}}},
        ["services.order.hpa: minReplicas (9) is greater than maxReplicas (3)"],
    ),
    "operator-without-admin": (
        {"auth": {"bootstrapAdmin": {"email": "", "password": ""}}},
        ["operator.enabled needs auth.bootstrapAdmin.email"],
    ),
    "node-port-on-a-cluster-ip": (
        {"gatewayService": {"type": "ClusterIP", "nodePort": 30080}},
        ["gatewayService.nodePort needs gatewayService.type NodePort or LoadBalancer"],
    ),
    "node-port-out-of-range": (
        {"gatewayService": {"type": "NodePort", "nodePort": 8080}},
        ["/gatewayService/nodePort", "minimum: got 8,080, want 30,000"],
    ),
    "gateway-service-type": (
        {"gatewayService": {"type": "ExternalName"}},
        ["/gatewayService/type", "'ClusterIP', 'NodePort', 'LoadBalancer'"],
    ),
    "connect-postgres-port": (
        {"kafkaConnect": {"url": "http://connect:8083", "postgresPort": 70000}},
        ["/kafkaConnect/postgresPort", "maximum"],
    ),
    "dead-letter-queue-is-the-queue": (
        {"platform": {"media": {"queue": "q1", "deadLetterQueue": "q1"}}},
        ["platform.media.deadLetterQueue must differ from platform.media.queue"],
    ),
}


@pytest.mark.parametrize(("values", "messages"), WRONG.values(), ids=WRONG.keys())
def test_wrong_values_are_refused_naming_the_value(
    stack: StackSettings, tmp_path: Path, values: dict[str, Any], messages: list[str]
) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    result = helm(stack, "template", "bmt", str(CHART), "-f", str(path), check=False)
    assert result.returncode != 0, "helm template accepted wrong values"
    assert result.stdout == ""
    for message in messages:
        assert message in result.stderr, result.stderr


def test_helm_lint_refuses_wrong_values_too(stack: StackSettings, tmp_path: Path) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump({"serviceDefaults": {"replicas": -1}}))
    result = helm(stack, "lint", str(CHART), "-f", str(path), check=False)
    assert result.returncode != 0
    assert "/serviceDefaults/replicas" in result.stdout


# --- the chart's CRDs are generated from crds/ ---------------------------------------------


def sync_crds(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SYNC_CRDS), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=PROJECT_ROOT,
    )


def test_chart_crds_are_the_generated_copies_of_crds() -> None:
    sources = sorted(p.name for p in (PROJECT_ROOT / "crds").glob("*.yaml"))
    assert {"bmt.dev_platforms.yaml", "bmt.dev_cinemas.yaml"} <= set(sources)
    result = sync_crds("--check")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (CHART / "crds").glob("*.yaml")) == sources
    for name in sources:
        copy = (CHART / "crds" / name).read_text()
        assert copy.startswith(f"# generated from crds/{name}")
        assert copy.endswith((PROJECT_ROOT / "crds" / name).read_text())


def test_sync_crds_check_catches_stale_missing_and_left_over_copies(tmp_path: Path) -> None:
    source, target = tmp_path / "crds", tmp_path / "chart-crds"
    source.mkdir()
    (source / "a.yaml").write_text("kind: A\n")
    (source / "b.yaml").write_text("kind: B\n")
    where = ("--source", str(source), "--target", str(target))
    missing = sync_crds("--check", *where)
    assert missing.returncode == 1
    assert "missing" in missing.stderr
    assert sync_crds(*where).returncode == 0
    assert sync_crds("--check", *where).returncode == 0
    assert (target / "a.yaml").read_text().endswith("kind: A\n")
    (source / "a.yaml").write_text("kind: A2\n")
    (source / "b.yaml").unlink()
    stale = sync_crds("--check", *where)
    assert stale.returncode == 1
    assert "stale" in stale.stderr
    assert "left over" in stale.stderr
    assert sync_crds(*where).returncode == 0
    assert sorted(p.name for p in target.iterdir()) == ["a.yaml"]


# --- helm install into the real API server -------------------------------------------------


@pytest.fixture
def release(stack: StackSettings, unique: str) -> Iterator[tuple[str, str]]:
    """A fresh namespace and release name; uninstalled and deleted afterwards."""
    namespace, name = f"chart-{unique}", f"bmt-{unique}"
    kubectl(stack, "create", "namespace", namespace)
    yield namespace, name
    helm(stack, "uninstall", name, "-n", namespace, check=False)
    kubectl(stack, "delete", "namespace", namespace, "--wait=false", check=False)


def test_helm_install_creates_every_object(
    stack: StackSettings, release: tuple[str, str], unique: str, tmp_path: Path
) -> None:
    namespace, name = release
    # The Platform gets names of its own and no connectors, so that an operator watching this
    # API server (the local platform runs one) builds nothing the local platform uses, and keeps
    # what it builds (Retain).
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "platform": {
                    "deletionPolicy": "Retain",
                    "media": {
                        "bucket": f"bmt-chart-{unique}",
                        "snsTopic": f"bmt-chart-{unique}",
                        "queue": f"bmt-chart-{unique}",
                        "deadLetterQueue": f"bmt-chart-{unique}-dlq",
                    },
                    "connectors": {"databases": []},
                }
            }
        )
    )
    sets = ["-f", str(values)]
    # --no-hooks: the migrations Job is a pre-install hook and Helm waits for a hook Job to
    # complete, which it never does without a kubelet. The hook objects are checked below by the
    # API server itself (server-side dry run) instead.
    helm(stack, "install", name, str(CHART), "-n", namespace, "--no-hooks", *sets)
    listed = json.loads(helm(stack, "list", "-n", namespace, "-o", "json").stdout)
    assert [(r["name"], r["status"]) for r in listed] == [(name, "deployed")]

    crds = kubectl(stack, "get", "crd", "-o", "name").stdout.split()
    for plural in ("platforms", "cinemas", "films", "showtimes"):
        assert f"customresourcedefinition.apiextensions.k8s.io/{plural}.bmt.dev" in crds

    def names(kind: str) -> set[str]:
        out = kubectl(stack, "get", kind, "-n", namespace, "-o", "json").stdout
        return {item["metadata"]["name"] for item in json.loads(out)["items"]}

    workloads = {f"{name}-{service}" for service in SERVICES}
    assert names("deployments") == workloads | {f"{name}-operator"}
    assert names("services") == workloads
    assert names("poddisruptionbudgets") == workloads
    assert names("horizontalpodautoscalers") == workloads
    assert names("ingresses") == {f"{name}-gateway"}
    assert {name, f"{name}-operator"} <= names("serviceaccounts")
    assert {f"{name}-common", f"{name}-operator"} | workloads <= names("configmaps")
    assert {f"{name}-postgres", f"{name}-aws", f"{name}-auth", f"{name}-payments"} <= names(
        "secrets"
    )
    assert names("platforms.bmt.dev") == {"bmt"}
    cluster_role = f"{name}-{namespace}-operator"
    kubectl(stack, "get", "clusterrole", cluster_role)
    binding = json.loads(
        kubectl(stack, "get", "clusterrolebinding", cluster_role, "-o", "json").stdout
    )
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": f"{name}-operator", "namespace": namespace}
    ]

    # The generated keys are real: an Ed25519 PEM and random strings, kept on upgrade.
    auth = json.loads(
        kubectl(stack, "get", "secret", f"{name}-auth", "-n", namespace, "-o", "json").stdout
    )
    assert set(auth["data"]) == {"jwt-private-key", "otp-pepper", "ticket-key", "admin-password"}
    helm(stack, "upgrade", name, str(CHART), "-n", namespace, "--no-hooks", *sets)
    again = json.loads(
        kubectl(stack, "get", "secret", f"{name}-auth", "-n", namespace, "-o", "json").stdout
    )
    assert again["data"] == auth["data"]

    # The hook objects (migrations Secret and Job), as the API server would take them.
    hooks = helm(
        stack,
        "template",
        name,
        str(CHART),
        "-n",
        namespace,
        "--show-only",
        "templates/migrations-job.yaml",
    ).stdout
    dry_run = kubectl(stack, "create", "--dry-run=server", "-n", namespace, "-f", "-", stdin=hooks)
    assert f"job.batch/{name}-migrations created (server dry run)" in dry_run.stdout

    helm(stack, "uninstall", name, "-n", namespace)
    assert names("deployments") == set()
    assert names("services") == set()
    gone = kubectl(stack, "get", "clusterrole", cluster_role, check=False)
    assert "NotFound" in gone.stderr


def test_api_server_takes_the_leader_election_objects(
    stack: StackSettings, release: tuple[str, str]
) -> None:
    """The Role, RoleBinding, PodDisruptionBudget and Deployment of two operators, as the API
    server would take them (server-side dry run: nothing is created)."""
    namespace, name = release
    objects = helm(
        stack,
        "template",
        name,
        str(CHART),
        "-n",
        namespace,
        "--set",
        "operator.replicas=2",
        "--show-only",
        "templates/operator.yaml",
    ).stdout
    dry_run = kubectl(
        stack, "create", "--dry-run=server", "-n", namespace, "-f", "-", stdin=objects
    ).stdout
    for created in (
        f"role.rbac.authorization.k8s.io/{name}-operator-leader",
        f"rolebinding.rbac.authorization.k8s.io/{name}-operator-leader",
        f"poddisruptionbudget.policy/{name}-operator",
        f"deployment.apps/{name}-operator",
    ):
        assert f"{created} created (server dry run)" in dry_run, dry_run
