"""What the module costs, measured against vanilla Synapse in the same run.

    python -m benchmarks             the full run (a few minutes)
    python -m benchmarks --quick     a smoke run of seconds: fails on errors only
    python -m benchmarks --postgres  homeservers on the local PostgreSQL

Starts its own homeservers on loopback (``bcrypt_rounds: 4``): ``target``
(the module), ``vanilla`` (the same config, no module), and two portals in
front of ``target``, one proxying and one redirecting. Requests go through
keep-alive aiohttp sessions, alternating between the measured server and its
baseline so that drift hits both alike. Client and servers share the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import attr
import synapse

from benchmarks import routing_engine
from deploy.homeserver import (
    Homeserver,
    create_postgres_database,
    drop_postgres_database,
    free_port,
    start_all,
    stop_all,
)

USER, PASSWORD = "bench", "bench-password"
Call = Callable[[aiohttp.ClientSession], Awaitable[None]]


class BenchmarkError(Exception):
    """A request failed: benchmarks fail on errors, never on timings."""


@attr.s(frozen=True, auto_attribs=True)
class Settings:
    rounds: int  # measured requests per side, after warm-up
    warmup: int
    concurrency: int
    duration: float  # seconds per side of the concurrency item
    directory_lines: int
    decisions: int


FULL = Settings(400, 50, 50, 30.0, 1_000_000, 200_000)
QUICK = Settings(20, 5, 10, 2.0, 10_000, 5_000)


@attr.s(frozen=True, auto_attribs=True)
class Deployment:
    target: Homeserver
    vanilla: Homeserver
    portal_proxy: Homeserver
    portal_redirect: Homeserver

    @property
    def all(self) -> list[Homeserver]:
        return [self.target, self.vanilla, self.portal_proxy, self.portal_redirect]


@contextmanager
def deployment(workdir: Path, use_postgres: bool) -> Iterator[Deployment]:
    databases: list[str] = []

    def database(name: str) -> str | None:
        if not use_postgres:
            return None
        db = f"login_redirect_bench_{name}_{free_port()}"
        create_postgres_database(db)
        databases.append(db)
        return db

    target = Homeserver("target", workdir, module_config={}, postgres_db=database("t"))
    vanilla = Homeserver(
        "vanilla", workdir, module_config=None, postgres_db=database("v")
    )

    def portal(name: str, mode: str) -> Homeserver:
        return Homeserver(
            name,
            workdir,
            postgres_db=database(name[-1]),
            module_config={
                "targets": {"target": {"base_url": target.base_url, "mode": mode}},
                "portal": {
                    "rules": [{"server_name": target.server_name, "target": "target"}]
                },
            },
        )

    servers = Deployment(
        target, vanilla, portal("portal-p", "proxy"), portal("portal-r", "redirect")
    )
    start_all(servers.all)
    try:
        for hs in (target, vanilla):
            hs.register_user(USER, PASSWORD)
        yield servers
    finally:
        stop_all(servers.all)
        for db in databases:
            drop_postgres_database(db)


def login_body(hs: Homeserver) -> dict[str, Any]:
    return {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": f"@{USER}:{hs.server_name}"},
        "password": PASSWORD,
    }


def post_login(url: str, body: dict[str, Any]) -> Call:
    async def call(session: aiohttp.ClientSession) -> None:
        async with session.post(url, json=body) as response:
            await _expect_ok(response)

    return call


def get(url: str, token: str | None = None) -> Call:
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def call(session: aiohttp.ClientSession) -> None:
        async with session.get(url, headers=headers) as response:
            await _expect_ok(response)

    return call


async def _expect_ok(response: aiohttp.ClientResponse) -> None:
    body = await response.read()
    if response.status != 200:
        raise BenchmarkError(
            f"{response.method} {response.url}: {response.status} {body[:200]!r}"
        )


async def timed(call: Call, session: aiohttp.ClientSession) -> float:
    start = time.perf_counter()
    await call(session)
    return (time.perf_counter() - start) * 1000


async def compare(
    measured: Call, baseline: Call, s: Settings
) -> tuple[list[float], list[float]]:
    """Latencies in ms of both calls, alternating, after a warm-up of each."""
    async with aiohttp.ClientSession() as a, aiohttp.ClientSession() as b:
        for _ in range(s.warmup):
            await measured(a)
            await baseline(b)
        ours, base = [], []
        for _ in range(s.rounds):
            ours.append(await timed(measured, a))
            base.append(await timed(baseline, b))
    return ours, base


async def throughput(call: Call, s: Settings) -> tuple[float, int]:
    """Calls per second and errors with ``s.concurrency`` clients for ``s.duration``."""
    done = errors = 0
    deadline = time.perf_counter() + s.duration

    async def client() -> None:
        nonlocal done, errors
        async with aiohttp.ClientSession() as session:
            while time.perf_counter() < deadline:
                try:
                    await call(session)
                    done += 1
                except (BenchmarkError, aiohttp.ClientError):
                    errors += 1

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(s.concurrency)))
    return done / (time.perf_counter() - start), errors


async def loopback_round_trip_ms(rounds: int) -> float:
    """Median round trip of one byte over a loopback TCP connection."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    samples = []
    for _ in range(max(rounds, 50)):
        start = time.perf_counter()
        writer.write(b"x")
        await reader.readexactly(1)
        samples.append((time.perf_counter() - start) * 1000)
    writer.close()
    server.close()
    return statistics.median(samples)


def p95(samples: list[float]) -> float:
    return sorted(samples)[max(0, int(len(samples) * 0.95) - 1)]


class Report:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def header(self) -> None:
        self.add(
            f"{'item':<44}{'median ms':>10}{'p95 ms':>9}{'baseline':>10}"
            f"{'ratio':>8}  goal"
        )

    def add(self, line: str) -> None:
        self.lines.append(line)
        print(line, flush=True)

    def latency(
        self, label: str, ours: list[float], base: list[float], goal: str
    ) -> None:
        ratio = statistics.median(ours) / statistics.median(base)
        self.add(
            f"{label:<44}{statistics.median(ours):>10.2f}{p95(ours):>9.2f}"
            f"{statistics.median(base):>10.2f}{ratio:>8.3f}  {goal}"
        )


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}; "
        f"Synapse {synapse.__version__}; {platform.platform()}"
    )


async def run_http(servers: Deployment, s: Settings, report: Report) -> int:
    t, v = servers.target, servers.vanilla
    path = "/_matrix/client/v3/login"
    ours, base = await compare(
        post_login(t.url(path), login_body(t)),
        post_login(v.url(path), login_body(v)),
        s,
    )
    report.latency("1. password login, module vs none", ours, base, "ratio <= 1.02")
    ours, base = await compare(
        get(t.url("/_matrix/client/versions")),
        get(v.url("/_matrix/client/versions")),
        s,
    )
    report.latency("2a. GET /versions, module vs none", ours, base, "ratio <= 1.01")
    tokens = [hs.password_login(USER, PASSWORD).json()["access_token"] for hs in (t, v)]
    sync = "/_matrix/client/v3/sync?timeout=0"
    ours, base = await compare(
        get(t.url(sync), tokens[0]), get(v.url(sync), tokens[1]), s
    )
    report.latency(
        "2b. GET /sync?timeout=0, module vs none", ours, base, "ratio <= 1.01"
    )
    rtt = await loopback_round_trip_ms(s.rounds)
    direct = post_login(t.url(path), login_body(t))
    ours, base = await compare(
        post_login(servers.portal_proxy.url(path), login_body(t)), direct, s
    )
    added = statistics.median(ours) - statistics.median(base)
    report.latency(
        "3. login via portal (proxy) vs direct", ours, base, "added <= RTT + 2 ms"
    )
    report.add(
        f"{'':<4}added median {added:.2f} ms; loopback RTT {rtt:.3f} ms; "
        f"goal {rtt + 2:.2f} ms: {'met' if added <= rtt + 2 else 'MISSED'}"
    )
    ours, base = await compare(
        post_login(servers.portal_redirect.url(path), login_body(t)), direct, s
    )
    added = statistics.median(ours) - statistics.median(base)
    report.latency(
        "4. login via portal (307 + re-post) vs direct", ours, base, "(both requests)"
    )
    report.add(f"{'':<4}added median {added:.2f} ms (the 307 round trip)")
    via_portal, portal_errors = await throughput(
        post_login(servers.portal_proxy.url(path), login_body(t)), s
    )
    straight, direct_errors = await throughput(direct, s)
    report.add(
        f"6. {s.concurrency} concurrent clients, {s.duration:.0f} s each: "
        f"{via_portal:.1f} logins/s via portal, {straight:.1f} direct "
        f"(ratio {via_portal / straight:.3f}); errors {portal_errors} via portal, "
        f"{direct_errors} direct (goal: 0)"
    )
    return portal_errors + direct_errors


def run_engine(s: Settings, report: Report) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "directory.tsv")
        routing_engine.write_directory(path, s.directory_lines)
        raw = routing_engine.config(path)
        engine, seconds = routing_engine.timed_load(raw)
        retained, _ = routing_engine.traced_load(raw)
    rows = routing_engine.rows(s.directory_lines, s.decisions)
    mix, healthy = rows["mix of the 4 kinds above"]
    rate = routing_engine.decisions_per_second(engine, mix, healthy)
    pool, _ = rows["pool pick"]
    pool_rate = routing_engine.decisions_per_second(engine, pool, healthy)
    report.add(
        f"5. routing engine, {s.directory_lines:,}-line directory + rules: load "
        f"{seconds:.2f} s (goal <= 5 s), {retained / 1e6:.0f} MB; "
        f"{rate:,.0f} decisions/s mixed, {pool_rate:,.0f}/s new users "
        f"(goal >= 200,000/s, one core)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of seconds")
    parser.add_argument("--postgres", action="store_true", help="use local PostgreSQL")
    parser.add_argument("--duration", type=float, help="seconds per concurrency side")
    args = parser.parse_args()
    s = QUICK if args.quick else FULL
    if args.duration is not None:
        s = attr.evolve(s, duration=args.duration)
    report = Report()
    report.add(f"Machine: {machine()}")
    report.add(
        f"Database: {'PostgreSQL' if args.postgres else 'sqlite'}; {s.rounds} "
        f"measured requests per side after {s.warmup} warm-up; keep-alive sessions"
    )
    report.header()
    with tempfile.TemporaryDirectory(prefix="login-redirect-bench-") as workdir:
        with deployment(Path(workdir), args.postgres) as servers:
            errors = asyncio.run(run_http(servers, s, report))
    run_engine(s, report)
    if errors:
        sys.exit(f"{errors} requests failed")


if __name__ == "__main__":
    main()
