"""The stack's kube-apiserver behaves like a cluster's: CRDs, schemas, RBAC'd clients, helm."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes import client, config

from bmt_stack.config import StackSettings
from kube import Kube

HERE = Path(__file__).parent
CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.stacktest.bmt.dev
spec:
  group: stacktest.bmt.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          required: [spec]
          properties:
            spec:
              type: object
              required: [size]
              properties:
                size: {type: integer, minimum: 1, maximum: 10}
"""


def kubectl(
    settings: StackSettings, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return Kube(settings).run(*args, stdin=stdin, check=check)


@pytest.fixture
def namespace(stack: StackSettings, unique: str) -> Iterator[str]:
    name = f"t-{unique}"
    kubectl(stack, "create", "namespace", name)
    yield name
    kubectl(stack, "delete", "namespace", name, "--wait=false")


@pytest.fixture(scope="module")
def widgets_crd(stack: StackSettings) -> str:
    kubectl(stack, "apply", "-f", "-", stdin=CRD)
    kubectl(
        stack,
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/widgets.stacktest.bmt.dev",
    )
    return "widgets.stacktest.bmt.dev"


def test_crd_becomes_established(stack: StackSettings, widgets_crd: str) -> None:
    crd = json.loads(kubectl(stack, "get", "crd", widgets_crd, "-o", "json").stdout)
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True"
    assert conditions["NamesAccepted"] == "True"


def test_custom_resource_written_by_kubectl_is_read_by_python(
    stack: StackSettings, widgets_crd: str, namespace: str
) -> None:
    widget = {
        "apiVersion": "stacktest.bmt.dev/v1",
        "kind": "Widget",
        "metadata": {"name": "w1", "namespace": namespace},
        "spec": {"size": 3},
    }
    kubectl(stack, "apply", "-f", "-", stdin=json.dumps(widget))
    api = client.CustomObjectsApi(config.new_client_from_config(str(stack.kubeconfig)))  # type: ignore[no-untyped-call]
    read = cast(
        "dict[str, Any]",
        api.get_namespaced_custom_object("stacktest.bmt.dev", "v1", namespace, "widgets", "w1"),
    )
    assert read["spec"] == {"size": 3}
    assert read["metadata"]["uid"]


def test_schema_violation_is_refused_with_the_servers_message(
    stack: StackSettings, widgets_crd: str, namespace: str
) -> None:
    widget = {
        "apiVersion": "stacktest.bmt.dev/v1",
        "kind": "Widget",
        "metadata": {"name": "too-big", "namespace": namespace},
        "spec": {"size": 11},
    }
    result = kubectl(stack, "apply", "-f", "-", stdin=json.dumps(widget), check=False)
    assert result.returncode != 0
    assert "spec.size" in result.stderr
    assert "should be less than or equal to 10" in result.stderr
    missing = kubectl(stack, "get", "widget", "too-big", "-n", namespace, check=False)
    assert "NotFound" in missing.stderr


def test_helm_install_creates_its_objects(stack: StackSettings, namespace: str) -> None:
    helm = str(stack.state_dir / "bin" / "helm")
    env = {**os.environ, "KUBECONFIG": str(stack.kubeconfig)}
    subprocess.run(
        [
            helm,
            "install",
            "tiny",
            str(HERE / "tiny-chart"),
            "-n",
            namespace,
            "--set",
            "greeting=hi",
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    settings_cm = json.loads(
        kubectl(stack, "get", "configmap", "tiny-settings", "-n", namespace, "-o", "json").stdout
    )
    assert settings_cm["data"] == {"greeting": "hi"}
    deployment = json.loads(
        kubectl(stack, "get", "deployment", "tiny-web", "-n", namespace, "-o", "json").stdout
    )
    assert deployment["metadata"]["annotations"]["meta.helm.sh/release-name"] == "tiny"
    releases = json.loads(
        subprocess.run(
            [helm, "list", "-n", namespace, "-o", "json"],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        ).stdout
    )
    assert [(r["name"], r["status"]) for r in releases] == [("tiny", "deployed")]


def test_namespace_deletion_is_carried_out(stack: StackSettings, unique: str) -> None:
    """The controller-manager's namespace controller empties and removes a namespace."""
    name = f"gone-{unique}"
    kubectl(stack, "create", "namespace", name)
    kubectl(stack, "create", "configmap", "c", "-n", name, "--from-literal=a=b")
    kubectl(stack, "delete", "namespace", name, "--timeout=60s")
    assert "NotFound" in kubectl(stack, "get", "namespace", name, check=False).stderr


def test_garbage_collector_removes_dependents(stack: StackSettings, namespace: str) -> None:
    """Owner references are honoured: the controller-manager's garbage collector runs."""
    kubectl(stack, "create", "configmap", "owner", "-n", namespace)
    owner_uid = kubectl(
        stack, "get", "configmap", "owner", "-n", namespace, "-o", "jsonpath={.metadata.uid}"
    ).stdout
    dependent = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "dependent",
            "namespace": namespace,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid}
            ],
        },
    }
    kubectl(stack, "apply", "-f", "-", stdin=json.dumps(dependent))
    kubectl(stack, "delete", "configmap", "owner", "-n", namespace)
    kubectl(stack, "wait", "--for=delete", "configmap/dependent", "-n", namespace, "--timeout=60s")
