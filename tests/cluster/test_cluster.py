"""BMT as it ships: the chart installed into a real node, every pod Ready, the flows through the
NodePort gateway, an upgrade and pod deletions under load, a drain against the disruption
budgets, the operator's failover, and an uninstall that keeps the CRDs and the data.

The tests run in file order: each leaves the release healthy for the next; the last two uninstall
and tear the node down as `bmt down` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import yaml
from chaos import checks
from chaos.load import Shop

from bmt_stack import cluster, demo
from bmt_stack.components.node import HOST_LINK, NETNS_PATH, OFFER_CHAIN, Containerd, teardown
from bmt_stack.config import HOST, PROJECT_ROOT, StackSettings
from crs import cinema, film
from kube import Kube
from support import Client, eventually, released_showtime, seat_map

NS = cluster.NAMESPACE
SERVICES = ("gateway", "user", "mail", "product", "upload", "showtime", "order", "payment")
OPERATOR_LEASE = "bmt-operator"
# Enough seats that the clients never run out while pods are deleted one by one.
HALL = {
    "name": "Kill",
    "rows": [{"label": label, "seats": 50, "price": 90_000} for label in "ABCDEFGHIJ"],
}


def _json(kube: Kube, *args: str) -> Any:
    return json.loads(kube.run(*args, "-o", "json").stdout)


def _deployments(kube: Kube) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = _json(kube, "-n", NS, "get", "deployments")["items"]
    return items


def _pods(kube: Kube, selector: str = "app.kubernetes.io/instance=bmt") -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = _json(kube, "-n", NS, "get", "pods", "-l", selector)["items"]
    return items


def _pod_states(kube: Kube, component: str) -> list[str]:
    """What a component's pods are doing, for a failure message."""
    states = []
    for pod in _pods(kube, f"app.kubernetes.io/component={component}"):
        conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
        containers = [
            f"{c['name']} restarts={c['restartCount']} state={c['state']} last={c['lastState']}"
            for c in pod["status"].get("containerStatuses", [])
        ]
        states.append(
            f"{pod['metadata']['name']} {pod['status'].get('phase')} {conditions} {containers}"
        )
    return states


def _ready(pod: dict[str, Any]) -> bool:
    conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
    return pod["metadata"].get("deletionTimestamp") is None and conditions.get("Ready") == "True"


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


async def _all_available(kube: Kube) -> bool | None:
    deployments = await asyncio.to_thread(_deployments, kube)
    for d in deployments:
        status, wanted = d["status"], d["spec"]["replicas"]
        if (
            status.get("updatedReplicas") != wanted
            or status.get("availableReplicas") != wanted
            or status.get("replicas") != wanted
        ):
            return None
    return True if deployments else None


def test_every_deployment_available_and_every_pod_ready(
    kube: Kube, figure: Callable[[str], None]
) -> None:
    names = {d["metadata"]["name"] for d in _deployments(kube)}
    assert names >= {f"bmt-{s}" for s in (*SERVICES, "operator")}, names
    asyncio.run(eventually(lambda: _all_available(kube), 180, "every Deployment available"))
    # Pods of a rollout's old ReplicaSet may still be terminating: they are leaving, not serving.
    pods = [p for p in _pods(kube) if p["metadata"].get("deletionTimestamp") is None]
    assert pods
    assert all(_ready(p) for p in pods), [p["metadata"]["name"] for p in pods if not _ready(p)]
    # Start to Ready: from the pod's scheduling to its Ready condition (probes included).
    lags = []
    for pod in pods:
        conditions = {c["type"]: c for c in pod["status"]["conditions"]}
        lags.append(
            (
                _time(conditions["Ready"]["lastTransitionTime"])
                - _time(conditions["PodScheduled"]["lastTransitionTime"])
            ).total_seconds()
        )
    lags.sort()
    node = _json(kube, "get", "node", "bmt-node")
    figure(
        f"[cluster] {len(pods)} pods Ready; start to Ready: median {lags[len(lags) // 2]:.0f}s,"
        f" max {lags[-1]:.0f}s; node allocatable memory"
        f" {node['status']['allocatable']['memory']}; {_node_rss()}"
    )


def _node_rss() -> str:
    """Resident memory of the node's daemons and of every process in its pods."""
    total, daemons = 0, 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cgroup = (entry / "cgroup").read_text()
            cmd = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            rss = next(  # kernel threads have no VmRSS
                (
                    int(line.split()[1])
                    for line in (entry / "status").read_text().splitlines()
                    if line.startswith("VmRSS:")
                ),
                0,
            )
            if "kubepods" in cgroup:
                total += rss
            elif (
                any(
                    cmd.endswith(n)
                    for n in ("containerd", "kubelet", "kube-proxy", "kube-scheduler")
                )
                or "containerd-shim" in cmd
            ):
                daemons += rss
    return f"RSS: node daemons {daemons // 1024} MiB, pods {total // 1024} MiB"


def test_pods_run_as_non_root_on_a_read_only_root(kube: Kube) -> None:
    probe = (
        "import os\n"
        "try:\n    open('/probe', 'w')\nexcept OSError as e:\n    w = e.strerror\n"
        "else:\n    w = 'writable'\n"
        "print(os.getuid(), os.getgid(), w)"
    )
    seen = {}
    for pod in _pods(kube):
        name = pod["metadata"]["name"]
        out = kube.run("-n", NS, "exec", name, "--", "python", "-c", probe).stdout.strip()
        seen[name] = out
    assert seen
    assert all(v == "10001 10001 Read-only file system" for v in seen.values()), seen


def test_the_three_flows_through_the_cluster_gateway(bmt_platform: StackSettings) -> None:
    asyncio.run(demo.play(bmt_platform, bmt_platform.cluster_gateway))


def test_the_operator_pod_reconciles_the_examples(kube: Kube) -> None:
    for file in sorted((PROJECT_ROOT / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(file.read_text()):
            if doc and doc["kind"] != "Platform":
                meta = doc["metadata"]
                asyncio.run(
                    kube.condition(
                        doc["kind"].lower(), meta["name"], meta.get("namespace", "default")
                    )
                )


def _holder(kube: Kube) -> str:
    lease = _json(kube, "-n", NS, "get", "lease", OPERATOR_LEASE)
    return str(lease["spec"].get("holderIdentity") or "")


def _host_pid(settings: StackSettings, pod: dict[str, Any]) -> int:
    """The host pid of a pod's main process, as containerd knows it."""
    container = pod["status"]["containerStatuses"][0]["containerID"].split("://")[1]
    out = subprocess.run(
        [*Containerd(settings).ctr(), "tasks", "ls"], capture_output=True, text=True, check=True
    ).stdout
    for line in out.splitlines()[1:]:
        task, pid, *_ = line.split()
        if task == container:
            return int(pid)
    raise AssertionError(f"no task for {pod['metadata']['name']}")


def test_killing_the_active_operator_hands_over_within_15s(
    kube: Kube, bmt_platform: StackSettings, figure: Callable[[str], None]
) -> None:
    operators = [p for p in _pods(kube, "app.kubernetes.io/component=operator") if _ready(p)]
    assert len(operators) == 2, [p["metadata"]["name"] for p in operators]
    names = {p["metadata"]["name"] for p in operators}

    async def elected() -> str | None:
        # <pod>_<random>, a new one per process; a lease left by an earlier release's pods
        # expires before one of these takes it.
        holder = await asyncio.to_thread(_holder, kube)
        return holder if holder.split("_")[0] in names else None

    leader = asyncio.run(eventually(elected, 30, "one of the operator pods holding the lease"))
    victim = next(p for p in operators if p["metadata"]["name"] == leader.split("_")[0])
    killed = time.monotonic()
    os.kill(_host_pid(bmt_platform, victim), signal.SIGKILL)

    async def handed_over() -> str | None:
        holder = await asyncio.to_thread(_holder, kube)
        return holder if holder and holder != leader else None

    successor = asyncio.run(eventually(handed_over, 30, "another operator holding the lease"))
    failover = time.monotonic() - killed
    # The new leader works: a resource applied now becomes Ready.
    name = f"failover-{int(time.time())}"
    kube.apply(cinema(name, "default"))
    asyncio.run(kube.condition("cinema", name, "default", within=60))
    ready = time.monotonic() - killed
    kube.run("delete", "cinema", name, "-n", "default", "--wait=false")
    figure(
        f"[cluster] operator failover after SIGKILL of the leader: lease taken by {successor}"
        f" in {failover:.1f}s, a new Cinema Ready {ready:.1f}s after the kill"
    )
    assert failover < 15, f"failover took {failover:.1f}s"
    asyncio.run(eventually(lambda: _all_available(kube), 120, "the operator pod replaced"))


class Booker:
    """Clients booking and browsing in a loop; every answer that is not a booking's 201 or a
    taken seat's 409 (or a browse's 200) is a failed request."""

    def __init__(self, customers: list[Client], showtime_id: int, seats: list[int]) -> None:
        self.customers, self.showtime_id, self.seats = customers, showtime_id, seats
        self.requests = 0
        self.failures: list[str] = []
        self.stop = asyncio.Event()

    async def _one(self, who: Client) -> None:
        while not self.stop.is_set() and self.seats:
            seat = self.seats.pop()
            booking = {"showtime_id": self.showtime_id, "seats": [seat]}
            for method, path, ok, body_json in (
                ("GET", f"/v1/showtimes/{self.showtime_id}/seats", (200,), None),
                ("POST", "/v1/orders", (201, 409), booking),
            ):
                self.requests += 1
                try:
                    status, body = await who.call(method, path, json=body_json)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    status, body = 0, repr(exc)
                if status not in ok:
                    self.failures.append(f"{method} {path}: {status} {str(body)[:160]}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 0.1)

    def run(self) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(self._one(c)) for c in self.customers]


async def _sent(booker: Booker) -> bool | None:
    return True if booker.requests else None


async def _booker(
    admin: Client, make_user: Callable[..., Awaitable[Client]], unique: str
) -> Booker:
    hall = {
        "name": "Hall 1",
        "rows": [
            {"label": r, "seats": 20, "seat_type": "standard", "price": 90_000}
            for r in "ABCDEFGHIJ"
        ],
    }
    showtime = await released_showtime(admin, unique, hall=hall)
    seats = [s["seat_id"] for s in (await seat_map(admin, showtime["id"]))["seats"]]
    return Booker([await make_user() for _ in range(3)], showtime["id"], seats)


async def test_an_upgrade_rolls_every_deployment_without_a_failed_request(
    kube: Kube,
    bmt_platform: StackSettings,
    admin: Client,
    make_user: Callable[..., Awaitable[Client]],
    unique: str,
    figure: Callable[[str], None],
) -> None:
    before = {d["metadata"]["name"]: d["metadata"]["generation"] for d in _deployments(kube)}
    booker = await _booker(admin, make_user, unique)
    load = booker.run()
    started = time.monotonic()
    try:
        # The clients are booking before the upgrade starts.
        await eventually(lambda: _sent(booker), 30, "the clients' first requests")
        tag = cluster.current_tag(bmt_platform)
        # A changed configuration: every pod template's checksum changes, every Deployment rolls.
        await asyncio.to_thread(
            cluster.helm_install,
            bmt_platform,
            tag,
            "--set",
            f"serviceDefaults.podAnnotations.bmt-upgrade={unique}",
            "--set",
            f"operator.podAnnotations.bmt-upgrade={unique}",
        )
        took = time.monotonic() - started
        await eventually(lambda: _all_available(kube), 120, "every Deployment rolled")
    finally:
        booker.stop.set()
        await asyncio.gather(*load)
    after = {d["metadata"]["name"]: d["metadata"]["generation"] for d in _deployments(kube)}
    unrolled = [name for name, gen in before.items() if after.get(name, gen) <= gen]
    figure(
        f"[cluster] helm upgrade rolled {len(before) - len(unrolled)} Deployments in {took:.0f}s;"
        f" {booker.requests} client requests meanwhile, {len(booker.failures)} failed"
    )
    assert not unrolled, f"not rolled: {unrolled}"
    assert booker.requests > 0
    assert not booker.failures, booker.failures[:10]


async def test_deleted_pods_are_replaced_and_lose_nothing(
    kube: Kube,
    bmt_platform: StackSettings,
    admin: Client,
    new_client: Callable[[], Client],
    make_user: Callable[..., Awaitable[Client]],
    http: aiohttp.ClientSession,
    db: Callable[[str], Awaitable[asyncpg.Connection]],
    unique: str,
    figure: Callable[[str], None],
) -> None:
    showtime = await released_showtime(admin, unique, hall=HALL)
    seats: asyncio.Queue[int] = asyncio.Queue()
    for seat in (await seat_map(admin, showtime["id"]))["seats"]:
        seats.put_nowait(seat["seat_id"])
    login = {"email": f"login-{unique}@example.com", "password": "a long enough password"}
    status, body = await admin.call(
        "POST", "/v1/users", json={**login, "name": "Kill", "role": "customer"}
    )
    assert status == 201, body
    namespace = f"kill-{unique}"
    await asyncio.to_thread(kube.run, "create", "namespace", namespace)
    await asyncio.to_thread(
        kube.apply, cinema("chaos-cinema", namespace), film("chaos-film", namespace)
    )
    await kube.condition("cinema", "chaos-cinema", namespace)
    await kube.condition("film", "chaos-film", namespace)
    shop = Shop(
        customers=[await make_user() for _ in range(3)],
        admin=admin,
        new_client=new_client,
        login=login,
        http=http,
        sandbox=f"http://{HOST}:{bmt_platform.port_sandbox}",
        showtime_id=showtime["id"],
        seats=seats,
        kube=kube,
        namespace=namespace,
    )
    marks = await checks.outbox_marks(db)
    load = [asyncio.create_task(journey) for journey in shop.journeys()]
    replaced: list[str] = []
    try:
        for component in (*SERVICES, "operator"):
            pods = await asyncio.to_thread(_pods, kube, f"app.kubernetes.io/component={component}")
            victim = pods[0]["metadata"]["name"]
            if component == "operator":
                victim = (await asyncio.to_thread(_holder, kube)).split("_")[0]
            deleted = time.monotonic()
            await asyncio.to_thread(kube.run, "-n", NS, "delete", "pod", victim, "--wait=false")
            try:
                await eventually(lambda: _all_available(kube), 180, f"{victim} replaced")
            except AssertionError as exc:
                states = await asyncio.to_thread(_pod_states, kube, component)
                lagging = [
                    f"{d['metadata']['name']} {d['status']}"
                    for d in await asyncio.to_thread(_deployments, kube)
                    if d["status"].get("availableReplicas") != d["spec"]["replicas"]
                    or d["status"].get("replicas") != d["spec"]["replicas"]
                    or d["status"].get("updatedReplicas") != d["spec"]["replicas"]
                ]
                raise AssertionError(
                    f"{exc}; {component} pods: {states}; Deployments not settled: {lagging}"
                ) from None
            replaced.append(f"{component} {time.monotonic() - deleted:.0f}s")
    finally:
        shop.stop.set()
        await asyncio.gather(*load)
    problems: list[str] = []

    async def settled() -> bool | None:
        problems[:] = [
            *await checks.orders_kept(db, shop),
            *await checks.paid_orders_ticketed(db, shop),
            *await checks.events_applied_once(db, marks),
            *await checks.codes_mailed_once(db, shop),
            *await checks.resources_ready(shop),
            *await checks.seats_sold_once(db, shop),
        ]
        return None if problems else True

    try:
        await eventually(settled, 180, "every invariant holding")
    finally:
        tally = shop.tally
        figure(
            f"[cluster] one pod of each Deployment deleted under load, replaced Ready in: "
            f"{', '.join(replaced)}; {tally.requests} requests, {tally.errors} failed;"
            f" {len(tally.acknowledged)} orders, {len(tally.paid)} paid;"
            f" invariants: {'; '.join(problems) or 'all held'}; last errors: {tally.last_errors}"
        )
        await asyncio.to_thread(kube.run, "delete", "namespace", namespace, "--wait=false")


def test_a_drain_is_held_by_the_disruption_budgets(
    kube: Kube, figure: Callable[[str], None]
) -> None:
    guarded = {
        d["metadata"]["name"]: d["spec"]["replicas"]
        for d in _deployments(kube)
        if d["spec"]["replicas"] > 1
    }
    assert guarded, "the local values run some Deployments with two replicas"
    lowest = dict(guarded)
    drain = subprocess.Popen(
        [
            str(kube.settings.state_dir / "bin" / "kubectl"),
            "drain",
            "bmt-node",
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=40s",
        ],
        env={**os.environ, "KUBECONFIG": str(kube.settings.kubeconfig)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        while drain.poll() is None:
            for d in _deployments(kube):
                name = d["metadata"]["name"]
                if name in lowest:
                    available = d["status"].get("availableReplicas") or 0
                    lowest[name] = min(lowest[name], available)
            with contextlib.suppress(subprocess.TimeoutExpired):
                drain.wait(timeout=0.5)  # sample the budgets twice a second until drain ends
        output = drain.stdout.read() if drain.stdout else ""
    finally:
        kube.run("uncordon", "bmt-node")
    refused = output.count("disruption budget")
    figure(
        f"[cluster] kubectl drain of the node: {refused} evictions refused by the budgets;"
        f" fewest available while draining: {lowest}"
    )
    assert drain.returncode != 0, "a single node cannot be drained of guarded pods"
    assert refused > 0, output[-2000:]
    assert all(v >= guarded[n] - 1 for n, v in lowest.items()), lowest
    asyncio.run(
        eventually(lambda: _all_available(kube), 180, "every Deployment back after uncordon")
    )


def test_uninstall_removes_the_release_and_keeps_crds_and_data(
    kube: Kube, bmt_platform: StackSettings
) -> None:
    async def count_orders() -> int:
        password = bmt_platform.postgres_password.get_secret_value()
        conn = await asyncpg.connect(
            f"postgresql://bmt:{password}@{HOST}:{bmt_platform.port_postgres}/bmt_order"
        )
        try:
            return int(await conn.fetchval("SELECT count(*) FROM orders"))
        finally:
            await conn.close()

    orders = asyncio.run(count_orders())
    cinemas = len(_json(kube, "get", "cinemas", "-A")["items"])
    cluster.helm(bmt_platform, "uninstall", cluster.RELEASE, "-n", NS, "--wait")
    left: list[str] = []

    async def gone() -> bool | None:
        # The pods go after their ReplicaSets, by the garbage collector, each after its grace.
        items = await asyncio.to_thread(
            _json,
            kube,
            "-n",
            NS,
            "get",
            "deploy,rs,svc,pods,configmap,secret,pdb,job",
            "-l",
            "app.kubernetes.io/instance=bmt",
        )
        left[:] = [f"{o['kind']}/{o['metadata']['name']}" for o in items["items"]]
        return None if left else True

    try:
        asyncio.run(eventually(gone, 90, "everything the chart made gone"))
    except AssertionError:
        raise AssertionError(f"left after uninstall: {left}") from None
    crds = {c["metadata"]["name"] for c in _json(kube, "get", "crd")["items"]}
    assert {"cinemas.bmt.dev", "films.bmt.dev", "showtimes.bmt.dev"} <= crds, crds
    assert len(_json(kube, "get", "cinemas", "-A")["items"]) == cinemas
    assert asyncio.run(count_orders()) == orders > 0


def test_the_node_torn_down_leaves_no_mount_interface_or_process(
    kube: Kube, bmt_platform: StackSettings, figure: Callable[[str], None]
) -> None:
    """What `bmt down` does to the node, with CoreDNS's pod still running on it."""
    assert any(_ready(p) for p in _json(kube, "-n", "kube-system", "get", "pods")["items"])
    started = time.monotonic()
    done = teardown(bmt_platform)
    took = time.monotonic() - started
    assert not NETNS_PATH.exists()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True)
    assert HOST_LINK not in links.stdout.split()
    state = str(bmt_platform.state_dir)
    mounts = [
        line for line in Path("/proc/self/mountinfo").read_text().splitlines() if state in line
    ]
    assert not mounts, mounts[:5]
    left = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit():
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                program = Path(cmd.split(" ")[0]).name
                cgroup = (entry / "cgroup").read_text()
                if program.startswith(("containerd", "kubelet", "kube-proxy", "kube-scheduler")):
                    left.append(cmd[:120])
                elif "kubepods" in cgroup:
                    left.append(f"{entry.name} in a pod's cgroup: {cmd[:80]}")
    assert not left, left
    chains = subprocess.run(
        ["iptables", "-w", "-t", "nat", "-S"], capture_output=True, text=True, check=True
    ).stdout
    assert OFFER_CHAIN not in chains
    figure(f"[cluster] node teardown in {took:.1f}s: {'; '.join(done)}")
