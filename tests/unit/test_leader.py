"""The operator's leader election (bmt_operator.leader) against an in-process Lease store and a
fake clock: who may take the lease when, optimistic writes, release, and the leader's exit once
its renew deadline has passed."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NoReturn

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import REGISTRY

from bmt_operator import leader
from bmt_operator.leader import Conflict, Elector, KubeLeases, Lease, Timing

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class Exited(BaseException):
    """Raised by the injected exit: BaseException, so no `except Exception` swallows it."""


def exit_now(code: int) -> NoReturn:
    raise Exited(code)


class Clock:
    """Monotonic and wall time together; `sleep` moves both."""

    def __init__(self) -> None:
        self.t = 0.0
        self.end: float | None = None  # sleeping past it cancels the sleeper (ends a loop)

    def mono(self) -> float:
        return self.t

    def wall(self) -> datetime:
        return EPOCH + timedelta(seconds=self.t)

    async def sleep(self, seconds: float) -> None:
        self.t += seconds
        if self.end is not None and self.t >= self.end:
            raise asyncio.CancelledError
        await asyncio.sleep(0)


class FakeLeases:
    """One Lease, versioned like the API server: create refuses an existing one, replace a
    stale resourceVersion."""

    def __init__(self) -> None:
        self.stored: Lease | None = None
        self.version = 0
        self.failing: set[str] = set()  # identities whose calls fail (cut off from the API)
        self.hang = False
        self.after_get: list[
            Callable[[], Awaitable[None]]
        ] = []  # callbacks run once after the next get

    async def get(self) -> Lease | None:
        if self.hang:
            await asyncio.Event().wait()
        stored = self.stored
        while self.after_get:
            await self.after_get.pop()()
        return stored

    async def create(self, lease: Lease) -> Lease:
        if self.stored is not None:
            raise Conflict("already exists")
        return self._store(lease)

    async def replace(self, lease: Lease) -> Lease:
        if self.stored is None or lease.resource_version != self.stored.resource_version:
            raise Conflict("the object has been modified")
        return self._store(lease)

    def _store(self, lease: Lease) -> Lease:
        self.version += 1
        self.stored = dataclasses.replace(lease, resource_version=str(self.version))
        return self.stored


class Cutoff:
    """The store as one candidate sees it: failing while its identity is cut off."""

    def __init__(self, store: FakeLeases, identity: str) -> None:
        self.store, self.identity = store, identity

    def _check(self) -> None:
        if self.identity in self.store.failing:
            raise ConnectionError("API server unreachable")

    async def get(self) -> Lease | None:
        self._check()
        return await self.store.get()

    async def create(self, lease: Lease) -> Lease:
        self._check()
        return await self.store.create(lease)

    async def replace(self, lease: Lease) -> Lease:
        self._check()
        return await self.store.replace(lease)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> FakeLeases:
    return FakeLeases()


def candidate(store: FakeLeases, clock: Clock, name: str) -> Elector:
    return Elector(
        Cutoff(store, name),
        name="bmt-operator",
        namespace="bmt",
        identity=name,
        wall=clock.wall,
        monotonic=clock.mono,
        sleep=clock.sleep,
        exit=exit_now,
    )


async def test_acquires_a_free_lease_by_creating_it(
    store: FakeLeases, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bmt_operator.leader")
    a = candidate(store, clock, "a")
    assert await a.try_acquire()
    assert a.leader
    assert store.stored == Lease("a", 10, EPOCH, EPOCH, 0, "1")
    assert REGISTRY.get_sample_value("bmt_operator_leader") == 1
    assert "leader: acquired lease bmt/bmt-operator as a" in caplog.messages


async def test_refuses_a_lease_held_and_renewed(store: FakeLeases, clock: Clock) -> None:
    a, b = candidate(store, clock, "a"), candidate(store, clock, "b")
    assert await a.try_acquire()
    for _ in range(5):  # long past one lease duration in all, but renewed all along
        assert not await b.try_acquire()
        clock.t += 9
        await a.renew()
    assert not await b.try_acquire()
    assert store.stored is not None
    assert store.stored.holder == "a"
    assert not b.leader


async def test_takes_over_an_expired_lease_and_the_old_holder_exits(
    store: FakeLeases, clock: Clock
) -> None:
    a, b = candidate(store, clock, "a"), candidate(store, clock, "b")
    assert await a.try_acquire()
    assert not await b.try_acquire()  # b starts watching the lease
    clock.t += 9.5
    assert not await b.try_acquire()
    clock.t += 0.5
    assert await b.try_acquire()
    assert store.stored is not None
    assert (store.stored.holder, store.stored.transitions) == ("b", 1)
    assert store.stored.acquire_time == clock.wall()
    with pytest.raises(Exited):  # a, back from a pause, finds the lease taken
        await a.renew()


async def test_an_old_renew_time_alone_is_no_expiry(store: FakeLeases, clock: Clock) -> None:
    """A standby measures the lease's age on its own clock from when it first saw it: a
    renewTime from a skewed or long-dead clock does not let it in earlier."""
    clock.t = 3600.0
    store.stored = Lease("a", 10, EPOCH, EPOCH, 4, "7")  # renewTime an hour ago
    b = candidate(store, clock, "b")
    assert not await b.try_acquire()
    clock.t += 9
    assert not await b.try_acquire()
    clock.t += 1
    assert await b.try_acquire()


async def test_a_renew_time_ahead_of_this_clock_holds_the_standby_off(
    store: FakeLeases, clock: Clock
) -> None:
    store.stored = Lease("a", 10, EPOCH, EPOCH + timedelta(seconds=60), 0, "1")
    b = candidate(store, clock, "b")
    assert not await b.try_acquire()
    clock.t += 30
    assert not await b.try_acquire()  # unchanged for 30 s, but renewTime + 10 s is ahead
    clock.t += 41
    assert await b.try_acquire()


async def test_a_released_lease_is_taken_at_once(store: FakeLeases, clock: Clock) -> None:
    a, b = candidate(store, clock, "a"), candidate(store, clock, "b")
    assert await a.try_acquire()
    assert not await b.try_acquire()
    await a.release()
    assert store.stored is not None
    assert (store.stored.holder, store.stored.duration) == (None, 1)
    assert not a.leader
    assert await b.try_acquire()
    assert (store.stored.holder, store.stored.transitions) == ("b", 1)


async def test_a_write_at_a_stale_resource_version_loses(store: FakeLeases, clock: Clock) -> None:
    a, b, c = (candidate(store, clock, name) for name in "abc")
    assert await a.try_acquire()
    await a.release()

    async def c_first() -> None:  # c writes between b's read and b's write
        assert await c.try_acquire()

    store.after_get.append(c_first)
    assert not await b.try_acquire()
    assert not b.leader
    assert store.stored is not None
    assert store.stored.holder == "c"
    with pytest.raises(Conflict):
        await store.create(Lease("b", 10, EPOCH, EPOCH))


async def test_create_races_are_conflicts_too(store: FakeLeases, clock: Clock) -> None:
    a, b = candidate(store, clock, "a"), candidate(store, clock, "b")

    async def a_first() -> None:
        assert await a.try_acquire()

    store.after_get.append(a_first)
    assert not await b.try_acquire()  # b read "absent", then a created it
    assert store.stored is not None
    assert store.stored.holder == "a"


async def test_a_restarted_holder_takes_its_own_lease_back(store: FakeLeases, clock: Clock) -> None:
    assert await candidate(store, clock, "pod-0").try_acquire()
    clock.t += 3
    again = candidate(store, clock, "pod-0")  # the same pod's next container
    assert await again.try_acquire()
    assert store.stored is not None
    assert (store.stored.transitions, store.stored.acquire_time) == (0, EPOCH)


async def test_the_leader_exits_when_its_renew_deadline_passes(
    store: FakeLeases, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    a = candidate(store, clock, "a")
    assert await a.try_acquire()
    clock.end = 20.0
    with pytest.raises(asyncio.CancelledError):  # renewing, it stays leader all along
        await asyncio.wait_for(a.hold(), 1)
    assert store.stored is not None
    assert (store.stored.holder, store.stored.renew_time) == ("a", EPOCH + timedelta(seconds=18))
    clock.end = None
    store.failing.add("a")
    lost_at = clock.t
    with pytest.raises(Exited):
        await asyncio.wait_for(a.hold(), 1)
    assert clock.t - lost_at <= Timing().renew_deadline
    assert any(m.startswith("leader: lost, exiting") for m in caplog.messages)


FAST = Timing(lease_seconds=1, renew_seconds=0.05, renew_deadline=0.3, retry_seconds=0.05)


def real_time(store: FakeLeases, name: str) -> Elector:
    return Elector(
        store, name="bmt-operator", namespace="bmt", identity=name, timing=FAST, exit=exit_now
    )


async def test_a_hung_api_server_counts_against_the_deadline(store: FakeLeases) -> None:
    a = real_time(store, "a")
    assert await a.try_acquire()
    store.hang = True
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(Exited):
        await asyncio.wait_for(a.hold(), 2)
    assert loop.time() - started < 0.3 + 0.1


async def test_the_leader_is_gone_before_a_standby_may_take_over(
    store: FakeLeases, clock: Clock
) -> None:
    """A leader cut off from the API server right after a renewal: its exit comes before the
    earliest takeover, by the margin lease duration - renew deadline."""
    a, b = candidate(store, clock, "a"), candidate(store, clock, "b")
    assert await a.try_acquire()
    assert not await b.try_acquire()
    store.failing.add("a")
    with pytest.raises(Exited):
        await a.hold()
    exited_at = clock.t
    clock.t = 0.0
    while not await b.try_acquire():
        clock.t += 0.25
    assert exited_at + 3 <= clock.t


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_run_stands_by_serving_healthz_then_stops(store: FakeLeases) -> None:
    store.stored = Lease("a", 10, datetime.now(UTC), datetime.now(UTC), 0, "1")
    b = real_time(store, "b")
    ran: list[bool] = []

    async def main(stop: asyncio.Event) -> None:
        ran.append(True)

    stop, port = asyncio.Event(), free_port()
    task = asyncio.create_task(leader.run(main, b, host="127.0.0.1", port=port, stop=stop))
    async with aiohttp.ClientSession() as session:
        for _ in range(50):
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    assert response.status == 200
                    assert await response.json() == {"leader": False}
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.02)
        else:
            pytest.fail("no /healthz while standing by")
    assert REGISTRY.get_sample_value("bmt_operator_leader") == 0
    stop.set()
    assert await asyncio.wait_for(task, 5) == 0
    assert not ran


async def test_run_leads_then_releases_after_main_stopped(
    store: FakeLeases, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bmt_operator.leader")
    a = real_time(store, "a")
    holders: list[str | None] = []
    leading = asyncio.Event()

    async def main(stop: asyncio.Event) -> None:
        assert store.stored is not None
        holders.append(store.stored.holder)
        leading.set()
        await stop.wait()
        assert store.stored.holder == "a"  # still held while the operator stops

    stop = asyncio.Event()
    task = asyncio.create_task(leader.run(main, a, host="127.0.0.1", port=free_port(), stop=stop))
    await asyncio.wait_for(leading.wait(), 5)
    await asyncio.sleep(0.2)  # a few renewals
    assert holders == ["a"]
    assert store.version > 2
    stop.set()
    assert await asyncio.wait_for(task, 5) == 0
    assert store.stored is not None
    assert store.stored.holder is None
    assert "leader: released lease bmt/bmt-operator" in caplog.messages


# --- the Lease as the API server stores it --------------------------------------------------


def test_lease_bodies_carry_micro_times_and_the_resource_version() -> None:
    leases = KubeLeases("bmt", "bmt-operator")
    when = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    body = leases._body(Lease("pod-0", 10, when, when + timedelta(microseconds=5), 2, "42"))
    assert body["metadata"] == {"name": "bmt-operator", "namespace": "bmt", "resourceVersion": "42"}
    assert body["spec"] == {
        "holderIdentity": "pod-0",
        "leaseDurationSeconds": 10,
        "leaseTransitions": 2,
        "acquireTime": "2026-01-01T12:00:00.000000Z",
        "renewTime": "2026-01-01T12:00:00.000005Z",
    }
    released = leases._body(Lease(None, 1, when, when, 2))
    assert "holderIdentity" not in released["spec"]
    assert "resourceVersion" not in released["metadata"]
    read = leases._lease(200, json.loads(json.dumps(body)))
    assert read == Lease("pod-0", 10, when, when + timedelta(microseconds=5), 2, "42")
    with pytest.raises(Conflict):
        leases._lease(409, {"message": "the object has been modified"})


def test_identity_and_namespace_come_from_the_downward_api(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("POD_NAME", "bmt-operator-7d9f-abcde")
    monkeypatch.setenv("POD_NAMESPACE", "shop")
    first, again = leader.identity(), leader.identity()
    assert first.startswith("bmt-operator-7d9f-abcde_")
    assert again != first  # a restarted process does not pose as the holder it replaced
    assert leader.namespace() == "shop"
    monkeypatch.delenv("POD_NAME")
    monkeypatch.delenv("POD_NAMESPACE")
    assert leader.identity().startswith(f"{socket.gethostname()}_")
    monkeypatch.setattr(leader, "SERVICE_ACCOUNT_NAMESPACE", tmp_path / "namespace")
    assert leader.namespace() == "default"
    (tmp_path / "namespace").write_text("from-the-token\n")
    assert leader.namespace() == "from-the-token"


def test_the_lease_client_signs_in_without_the_kubernetes_library(tmp_path: Path) -> None:
    """The image has no kubernetes package: credentials come from Kopf's own readers."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    now = datetime.now(UTC)
    ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
                "clusters": [
                    {
                        "name": "k",
                        "cluster": {
                            "server": "https://127.0.0.1:6443",
                            "certificate-authority-data": base64.b64encode(
                                ca.public_bytes(serialization.Encoding.PEM)
                            ).decode(),
                        },
                    }
                ],
                "users": [{"name": "u", "user": {"token": "t0ken"}}],
            }
        )
    )
    probe = (
        "import asyncio, sys\n"
        "sys.modules['kubernetes'] = None  # importing it now fails\n"
        "from bmt_operator.leader import KubeLeases\n"
        "async def main():\n"
        "    leases = KubeLeases('bmt', 'bmt-operator')\n"
        "    session = await leases._login()\n"
        "    print(session.headers['Authorization'], leases._path(True))\n"
        "    await session.close()\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [
        "Bearer",
        "t0ken",
        "https://127.0.0.1:6443/apis/coordination.k8s.io/v1/namespaces/bmt/leases/bmt-operator",
    ]
