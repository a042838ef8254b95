"""The stack's own behaviour: idempotent `up`, clean `down`, failures reported with their log."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bmt_stack import cli
from bmt_stack.components import all_components
from bmt_stack.components.node import node_components
from bmt_stack.components.services import SPECS
from bmt_stack.config import StackSettings
from bmt_stack.process import read_pid

BMT = [sys.executable, "-m", "bmt_stack.cli"]


def bmt(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BMT, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def side_stack(stack: StackSettings) -> Iterator[dict[str, str]]:
    """Settings for a second, isolated stack: own state folder, own ports, same cache."""
    # Not under pytest's tmp_path: its 0700 parents would lock out the postgres user.
    state = Path(tempfile.mkdtemp(prefix="bmt-side-"))
    state.chmod(0o755)
    env = {
        "BMT_STATE_DIR": str(state),
        "BMT_CACHE_DIR": str(stack.cache_dir),
        "BMT_PORT_POSTGRES": str(free_port()),
        "BMT_PORT_MOTO": str(free_port()),
        "BMT_PORT_KAFKA": str(free_port()),
        "BMT_PORT_KAFKA_CONTROLLER": str(free_port()),
    }
    yield env
    bmt("stack", "down", env=env)
    shutil.rmtree(state, ignore_errors=True)


def pids(state_dir: Path) -> dict[str, int | None]:
    return {f.stem: read_pid(f) for f in sorted((state_dir / "run").glob("*.pid"))}


def test_up_on_a_running_stack_changes_nothing(stack: StackSettings) -> None:
    cli.platform_up(stack)
    # A node left by an earlier `bmt cluster up` keeps running beside host mode; `up` leaves it be.
    node = {c.name for c in node_components(stack)}
    before = pids(stack.state_dir)
    expected = len(all_components(stack)) + len(SPECS)
    assert len([name for name in before if name not in node]) == expected, before
    assert all(before.values()), before
    for command in (["stack", "up"], ["up"]):
        result = bmt(*command)
        assert result.returncode == 0, result.stderr
    assert result.stdout.count("already running") == expected
    assert pids(stack.state_dir) == before


def test_status_reports_every_component_healthy(stack: StackSettings) -> None:
    result = bmt("stack", "status")
    assert result.returncode == 0, result.stdout
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    for name in ("postgres", "kafka", "connect", "moto", "etcd", "apiserver", "controller-manager"):
        assert rows[name].rstrip().endswith("healthy"), rows[name]
    assert "installed" in rows["kubectl"]
    assert "installed" in rows["helm"]


def test_down_leaves_no_process_behind(side_stack: dict[str, str]) -> None:
    state = Path(side_stack["BMT_STATE_DIR"])
    up = bmt("stack", "up", "--only", "postgres,moto", env=side_stack)
    assert up.returncode == 0, up.stdout + up.stderr
    running = pids(state)
    assert set(running) == {"postgres", "moto"}
    assert all(running.values())

    down = bmt("stack", "down", env=side_stack)
    assert down.returncode == 0
    assert pids(state) == {}
    for pid in running.values():
        assert pid is not None
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid), f"pid {pid} survived down"
    # Nor any child of theirs: no process still refers to the side stack's state folder.
    leftovers = subprocess.run(
        ["pgrep", "-f", str(state)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert leftovers == []


def test_up_right_after_a_crash_starts_the_component_again(side_stack: dict[str, str]) -> None:
    """A postmaster killed with SIGKILL leaves its children (each in a session of its own) on
    the shared memory for a moment; `up` at once must still bring PostgreSQL back."""
    state = Path(side_stack["BMT_STATE_DIR"])
    up = bmt("stack", "up", "--only", "postgres", env=side_stack)
    assert up.returncode == 0, up.stdout + up.stderr
    crashed = pids(state)["postgres"]
    assert crashed is not None
    os.kill(crashed, signal.SIGKILL)
    again = bmt("stack", "up", "--only", "postgres", env=side_stack)
    assert again.returncode == 0, again.stdout + again.stderr
    restarted = pids(state)["postgres"]
    assert restarted not in (None, crashed)
    status = bmt("stack", "status", env=side_stack)
    assert "healthy" in next(line for line in status.stdout.splitlines() if "postgres" in line)


def test_start_failure_is_reported_with_the_tail_of_its_log(side_stack: dict[str, str]) -> None:
    broken = {**side_stack, "BMT_KAFKA_HEAP": "lots"}
    result = bmt("stack", "up", "--only", "kafka", env=broken)
    assert result.returncode == 1
    assert "kafka FAILED: kafka exited during start-up" in result.stderr
    # The JVM's own complaint, read from the component's log file.
    assert "Invalid initial heap size: -Xmslots" in result.stderr


def test_a_taken_port_is_named(side_stack: dict[str, str]) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(side_stack["BMT_PORT_MOTO"])))
        squatter.listen()
        result = bmt("stack", "up", "--only", "moto", env=side_stack)
    assert result.returncode == 1
    assert f"port 127.0.0.1:{side_stack['BMT_PORT_MOTO']} is taken" in result.stderr


def _is_zombie(pid: int) -> bool:
    try:
        return " Z " in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]
    except OSError:
        return True
