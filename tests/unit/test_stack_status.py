"""`bmt status` of a stack that does not own the machine's node: its own rows, no crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from bmt_stack import cli, cluster
from bmt_stack.config import StackSettings


def test_a_stack_not_in_cluster_mode_lists_its_components_and_no_pods(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = StackSettings(state_dir=tmp_path, cache_dir=tmp_path / "cache")
    assert not cluster.active(settings)
    assert cli.status(settings, []) == 1  # no kubectl, no helm
    out = capsys.readouterr().out
    assert "kubectl" in out
    assert "NAMESPACE" not in out


def test_pods_table_without_a_kubectl_says_so() -> None:
    settings = StackSettings(state_dir=Path("/nonexistent"), cache_dir=Path("/nonexistent"))
    assert cluster.pods_table(settings).startswith("(no answer from the API server:")
