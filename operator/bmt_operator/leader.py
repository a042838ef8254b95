"""Leader election over a `coordination.k8s.io/v1` Lease, so that several operator replicas can
run while exactly one of them runs Kopf (`BMT_LEADER_ELECTION=true`). Kopf's own peering is no
substitute: it pauses operators instead of electing one, and peers of equal priority all freeze.

Safety rests on timing, as in client-go: the leader exits the process when it has not renewed
for `renew_deadline` seconds, while a standby takes over only once the lease has stayed unchanged
for `leaseDurationSeconds` by its own monotonic clock (no trust in other nodes' clocks) and
renewTime + leaseDurationSeconds has passed. The difference is the margin that keeps two from
ever reconciling at once. A clean stop releases the lease, so the standby takes over at once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn, Protocol

import aiohttp
import kopf
from aiohttp import web

from bmt_operator.metrics import LEADER

logger = logging.getLogger(__name__)

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class Lease:
    """The spec of a Lease and the resourceVersion it was read at (None: not stored yet)."""

    holder: str | None
    duration: int
    acquire_time: datetime | None
    renew_time: datetime | None
    transitions: int = 0
    resource_version: str | None = None


class Conflict(Exception):
    """Create of a Lease that exists, or replace at a stale resourceVersion: someone else wrote."""


class LeaseStore(Protocol):
    async def get(self) -> Lease | None: ...
    async def create(self, lease: Lease) -> Lease: ...
    async def replace(self, lease: Lease) -> Lease: ...


@dataclass(frozen=True)
class Timing:
    lease_seconds: int = 10
    renew_seconds: float = 2.0
    renew_deadline: float = 7.0  # < lease_seconds: the leader is gone before anyone takes over
    retry_seconds: float = 1.0


def identity() -> str:
    """The pod's name (downward API), else host and pid, and a suffix of this process's own: a
    container restarted in the same pod is a new candidate, not the holder it replaced."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def namespace() -> str:
    if own := os.environ.get("POD_NAMESPACE"):
        return own
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


def _exit(code: int) -> NoReturn:
    os._exit(code)  # at once: no cleanup that could let Kopf reconcile one more resource


class Elector:
    def __init__(
        self,
        store: LeaseStore,
        *,
        name: str,
        namespace: str,
        identity: str,
        timing: Timing = Timing(),
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        exit: Callable[[int], NoReturn] = _exit,  # injected: tests must not end the process
    ) -> None:
        self.store, self.name, self.namespace, self.identity = store, name, namespace, identity
        self.timing = timing
        self._wall, self._mono, self._sleep, self._exit = wall, monotonic, sleep, exit
        self.leader = False
        self._renewed_at = 0.0  # monotonic start of the last write that succeeded
        self._observed: Lease | None = None  # another holder's lease, as last read
        self._observed_at = 0.0

    @property
    def lease(self) -> str:
        return f"{self.namespace}/{self.name}"

    def _expired(self, lease: Lease, now: datetime) -> bool:
        if lease != self._observed:  # any renewal changes resourceVersion and renewTime
            self._observed, self._observed_at = lease, self._mono()
        duration = lease.duration or self.timing.lease_seconds
        unchanged = self._mono() - self._observed_at >= duration
        stale = lease.renew_time is None or lease.renew_time + timedelta(seconds=duration) <= now
        return unchanged and stale

    async def try_acquire(self) -> bool:
        """One attempt: create the Lease, or take it when free, ours, or expired."""
        started, now = self._mono(), self._wall()
        current = await self.store.get()
        mine = Lease(self.identity, self.timing.lease_seconds, now, now)
        if (
            current is not None
            and current.holder not in (None, self.identity)
            and not self._expired(current, now)
        ):
            return False  # held by another, and renewed lately
        try:
            if current is None:
                await self.store.create(mine)
            else:  # expired, released (no holder), or ours from before this pod restarted
                await self.store.replace(self._taken(mine, current))
        except Conflict:
            return False  # another candidate wrote first
        self._renewed_at, self.leader = started, True
        LEADER.set(1)
        logger.info("leader: acquired lease %s as %s", self.lease, self.identity)
        return True

    def _taken(self, mine: Lease, current: Lease) -> Lease:
        ours = current.holder == self.identity
        return dataclasses.replace(
            mine,
            acquire_time=current.acquire_time if ours else mine.acquire_time,
            transitions=current.transitions + (0 if ours else 1),
            resource_version=current.resource_version,
        )

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Stands by until leader (True) or until `stop` is set (False)."""
        logger.info("leader: standing by for lease %s as %s", self.lease, self.identity)
        while not stop.is_set():
            try:
                if await self.try_acquire():
                    return True
            except Exception as exc:  # the API server away: keep standing by
                logger.warning("leader: cannot read or write lease %s: %s", self.lease, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.timing.retry_seconds)
        return False

    async def renew(self) -> None:
        """One renewal; exits the process when another holds the lease."""
        current = await self.store.get()
        if current is None or current.holder != self.identity:
            holder = current.holder if current else None
            self._lost(f"lease {self.lease} is held by {holder!r}")
        await self.store.replace(dataclasses.replace(current, renew_time=self._wall()))

    async def hold(self) -> None:
        """Renews until cancelled; exits the process once the renew deadline has passed, so a
        leader cut off from the API server stops before any standby may take over."""
        pause = self.timing.renew_seconds
        while True:
            await self._sleep(pause)
            started = self._mono()
            left = self.timing.renew_deadline - (started - self._renewed_at)
            if left <= 0:
                self._lost(f"lease {self.lease} not renewed for {self.timing.renew_deadline} s")
            try:
                await asyncio.wait_for(self.renew(), min(left, self.timing.renew_seconds))
            except Exception as exc:
                logger.warning("leader: renewing lease %s failed: %r", self.lease, exc)
                pause = self.timing.retry_seconds
                if self._mono() - self._renewed_at >= self.timing.renew_deadline:
                    self._lost(f"lease {self.lease} not renewed for {self.timing.renew_deadline} s")
            else:
                self._renewed_at, pause = started, self.timing.renew_seconds

    def _lost(self, why: str) -> NoReturn:
        logger.error("leader: lost, exiting: %s", why)
        self._exit(1)

    async def release(self) -> None:
        """Hands the lease back (no holder), so that a standby takes it on its next try."""
        if not self.leader:
            return
        self.leader = False
        LEADER.set(0)
        current = await self.store.get()
        if current is None or current.holder != self.identity:
            return
        now = self._wall()
        await self.store.replace(
            dataclasses.replace(current, holder=None, duration=1, acquire_time=now, renew_time=now)
        )
        logger.info("leader: released lease %s", self.lease)


@contextlib.asynccontextmanager
async def standby_health(host: str, port: int) -> AsyncIterator[None]:
    """/healthz while standing by, so liveness passes; closed before Kopf binds the port."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"leader": False})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    try:
        yield
    finally:
        await runner.cleanup()


async def run(
    main: Callable[[asyncio.Event], Awaitable[None]],
    elector: Elector,
    *,
    host: str,
    port: int,
    stop: asyncio.Event | None = None,
) -> int:
    """Stands by, then runs `main` (Kopf, stopped by the event) while holding the lease; releases
    it once `main` has returned, so nothing reconciles after the hand-over."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    LEADER.set(0)
    try:
        async with standby_health(host, port):
            if not await elector.acquire(stop):
                return 0
        holding = asyncio.create_task(elector.hold(), name="leader lease renewal")
        try:
            await main(stop)
        finally:
            for sig in signals:  # Kopf's handlers point at its finished run
                loop.add_signal_handler(sig, stop.set)
            holding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holding
            try:
                await asyncio.wait_for(elector.release(), elector.timing.renew_seconds * 2)
            except Exception as exc:  # the standby then waits for the lease to expire
                logger.warning("leader: releasing lease %s failed: %r", elector.lease, exc)
        return 0
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


# --- the Lease in the Kubernetes API --------------------------------------------------------


def _micro_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # MicroTime: 6 digits


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class ApiError(Exception):
    pass


class KubeLeases:
    """One Lease via the API server, with the credentials Kopf itself uses (in-cluster service
    account, else kubeconfig); logs in again on 401, as the service-account token rotates."""

    def __init__(self, namespace: str, name: str, *, timeout: float = 5.0) -> None:
        self.namespace, self.name = namespace, name
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._info: kopf.ConnectionInfo | None = None
        self._session: aiohttp.ClientSession | None = None

    def _path(self, named: bool) -> str:
        assert self._info is not None
        base = f"{self._info.server.rstrip('/')}/apis/coordination.k8s.io/v1"
        leases = f"{base}/namespaces/{self.namespace}/leases"
        return f"{leases}/{self.name}" if named else leases

    async def _login(self) -> aiohttp.ClientSession:
        if self._session is not None:
            await self._session.close()
        # Kopf's own credential readers, which need no Kubernetes client library (the image has
        # none): the pod's service account, else the kubeconfig.
        settings = kopf.OperatorSettings()
        info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
            settings=settings
        )
        if info is None:
            raise ApiError("no Kubernetes credentials (neither in-cluster nor kubeconfig)")
        context = ssl.create_default_context(
            cafile=os.fsdecode(info.ca_path) if info.ca_path else None,
            cadata=base64.b64decode(info.ca_data).decode() if info.ca_data else None,
        )
        if info.insecure:
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        if info.certificate_path and info.private_key_path:
            context.load_cert_chain(
                os.fsdecode(info.certificate_path), os.fsdecode(info.private_key_path)
            )
        self._info = info
        self._session = aiohttp.ClientSession(
            headers=info.as_http_headers(),
            timeout=self._timeout,
            connector=aiohttp.TCPConnector(ssl=context),
        )
        return self._session

    async def _call(
        self, method: str, named: bool, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        session = self._session or await self._login()
        for attempt in range(2):
            async with session.request(method, self._path(named), json=body) as response:
                if response.status == 401 and attempt == 0:
                    session = await self._login()
                    continue
                answer: dict[str, Any] = await response.json(content_type=None)
                return response.status, answer
        raise ApiError("unauthorized")

    def _lease(self, status: int, answer: dict[str, Any]) -> Lease:
        if status == 409:
            raise Conflict(answer.get("message", "conflict"))
        if status >= 300:
            raise ApiError(f"{status}: {answer.get('message', answer)}")
        spec = answer.get("spec") or {}
        return Lease(
            holder=spec.get("holderIdentity") or None,
            duration=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=_parse_time(spec.get("acquireTime")),
            renew_time=_parse_time(spec.get("renewTime")),
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=answer["metadata"]["resourceVersion"],
        )

    def _body(self, lease: Lease) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "leaseDurationSeconds": lease.duration,
            "leaseTransitions": lease.transitions,
        }
        if lease.holder:
            spec["holderIdentity"] = lease.holder
        if lease.acquire_time:
            spec["acquireTime"] = _micro_time(lease.acquire_time)
        if lease.renew_time:
            spec["renewTime"] = _micro_time(lease.renew_time)
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if lease.resource_version:
            meta["resourceVersion"] = lease.resource_version  # optimistic: 409 when stale
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": spec,
        }

    async def get(self) -> Lease | None:
        status, answer = await self._call("GET", named=True)
        return None if status == 404 else self._lease(status, answer)

    async def create(self, lease: Lease) -> Lease:
        fresh = dataclasses.replace(lease, resource_version=None)  # the server refuses one
        return self._lease(*await self._call("POST", named=False, body=self._body(fresh)))

    async def replace(self, lease: Lease) -> Lease:
        return self._lease(*await self._call("PUT", named=True, body=self._body(lease)))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
