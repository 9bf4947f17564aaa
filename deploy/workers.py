"""Synapse with workers on PostgreSQL and Redis, behind Debian's nginx.

A ``Homeserver`` is the main process (its ``homeserver.yaml`` is the shared
config); each ``Worker`` adds its own file to it, as Synapse's docs describe.
``Nginx`` is the reverse proxy in front of them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from deploy.homeserver import (
    REPO_ROOT,
    STARTUP_TIMEOUT,
    Homeserver,
    _log_config,
    free_port,
)

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
REDIS_PORT = 6379
REPLICATION_SECRET = "replication-secret-for-tests"


def reachable(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def missing_services() -> list[str]:
    """What a worker deployment needs that this machine lacks."""
    missing = []
    if not reachable(5432):
        missing.append("PostgreSQL on 127.0.0.1:5432")
    if not reachable(REDIS_PORT):
        missing.append(f"Redis on 127.0.0.1:{REDIS_PORT}")
    if not Path(NGINX).exists():
        missing.append("nginx (apt-get install nginx)")
    return missing


def shared_worker_config(replication_port: int, redis_dbid: int) -> dict[str, Any]:
    """What main's homeserver.yaml adds for workers (listeners apart)."""
    return {
        "instance_map": {"main": {"host": "127.0.0.1", "port": replication_port}},
        "worker_replication_secret": REPLICATION_SECRET,
        "redis": {
            "enabled": True,
            "host": "127.0.0.1",
            "port": REDIS_PORT,
            "dbid": redis_dbid,
        },
    }


def http_listener(port: int, *resources: str) -> dict[str, Any]:
    return {
        "port": port,
        "bind_addresses": ["127.0.0.1"],
        "type": "http",
        "x_forwarded": True,
        "resources": [{"names": list(resources), "compress": False}],
    }


def prepare_database(main: Homeserver) -> None:
    """Create Synapse's own schema, as main would at its first start: workers
    refuse to start on an empty database, and main with them would race."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "synapse._scripts.update_synapse_database",
            "--database-config",
            str(main.config_path),
        ],
        cwd=main.dir,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        check=True,
        capture_output=True,
        timeout=STARTUP_TIMEOUT,
    )


class Worker(Homeserver):
    """A ``synapse.app.generic_worker`` of ``main``: main's config plus its own.

    ``resources`` are its one HTTP listener's (``health`` alone for a worker
    that serves nothing; Synapse answers ``/health`` on every listener).
    """

    def __init__(self, main: Homeserver, name: str, resources: Sequence[str]) -> None:
        # Not Homeserver.__init__: a worker has no config or key of its own.
        self.name = name
        self.main = main
        self.postgres_db = main.postgres_db
        self.dir = main.dir.parent / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.server_name = main.server_name
        self.shared_secret = main.shared_secret
        self.log_path = self.dir / "homeserver.log"
        self.process = None
        self.config = main.config
        self.config_path = main.config_path
        log_config = self.dir / "log.yaml"
        log_config.write_text(yaml.safe_dump(_log_config(self.log_path)))
        self.worker_config_path = self.dir / "worker.yaml"
        worker_config = {
            "worker_app": "synapse.app.generic_worker",
            "worker_name": name,
            "worker_listeners": [http_listener(self.port, *resources)],
            "worker_log_config": str(log_config),
        }
        self.worker_config_path.write_text(yaml.safe_dump(worker_config))

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "synapse.app.generic_worker",
            "-c",
            str(self.config_path),
            "-c",
            str(self.worker_config_path),
        ]


class Nginx:
    """nginx in front of a deployment: ``/_matrix/client`` and
    ``/_synapse/client`` round-robin over ``client_workers`` (no stickiness),
    everything else to ``main``. Its access log names the upstream of each
    request and leaves query strings out (they may hold login tokens)."""

    def __init__(
        self,
        workdir: Path,
        *,
        main: Homeserver,
        client_workers: Iterable[Homeserver],
        port: int | None = None,
    ) -> None:
        self.dir = workdir / "nginx"
        (self.dir / "temp").mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.access_log = self.dir / "access.log"
        self.error_log = self.dir / "error.log"
        self.config_path = self.dir / "nginx.conf"
        self.process: subprocess.Popen[bytes] | None = None
        upstreams = "".join(
            f"        server 127.0.0.1:{hs.port};\n" for hs in client_workers
        )
        temp = self.dir / "temp"
        # A root master would run its workers as nobody, who cannot write here.
        user = "user root;\n" if os.geteuid() == 0 else ""
        self.config_path.write_text(
            f"""{user}worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.error_log} warn;
events {{ worker_connections 512; }}
http {{
    log_format upstream '$msec $request_method $uri $status $upstream_addr';
    access_log {self.access_log} upstream;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    upstream client_workers {{
{upstreams}    }}
    server {{
        listen 127.0.0.1:{self.port};
        proxy_http_version 1.1;
        proxy_set_header Host $host:$server_port;
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Proto $scheme;
        location /_matrix/client {{ proxy_pass http://client_workers; }}
        location /_synapse/client {{ proxy_pass http://client_workers; }}
        location / {{ proxy_pass http://127.0.0.1:{main.port}; }}
    }}
}}
"""
        )

    def start(self) -> None:
        log = open(self.dir / "stderr.log", "ab")
        self.process = subprocess.Popen(
            [
                NGINX,
                "-c",
                str(self.config_path),
                "-p",
                str(self.dir),
                "-e",
                str(self.error_log),
                "-g",
                "daemon off;",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 10
        while not reachable(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "nginx did not start:\n"
                    + self.error_log.read_text(errors="replace")
                )
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def url(self, path: str) -> str:
        return self.base_url + path

    def upstreams_of(self, since: float, count: int) -> list[str]:
        """The upstreams that served the first ``count`` requests logged at or
        after ``since`` (a ``time.time()``), in order. nginx logs a request
        once it is done, maybe after the client has the answer: waits a bit."""
        deadline = time.monotonic() + 5
        while True:
            served = [
                line.split(" ")[4]
                for line in self.access_log.read_text().splitlines()
                if float(line.split(" ")[0]) >= since
            ]
            if len(served) >= count or time.monotonic() > deadline:
                return served
            time.sleep(0.05)
