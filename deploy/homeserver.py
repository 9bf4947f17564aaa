"""Start and drive real Synapse processes on loopback, with the module loaded.

Each homeserver gets its own directory (config, sqlite database, signing key,
log). Processes are started together and waited for together, so a group of
homeservers costs about one cold start.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import psycopg2
import yaml
from signedjson.key import generate_signing_key, write_signing_keys

REPO_ROOT = Path(__file__).resolve().parents[1]
MODULE = "synapse_login_redirect.LoginRedirect"
STARTUP_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class HttpResponse:
    """A minimal response: status, headers and body, JSON decoded on demand."""

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<HttpResponse {self.status} {self.body[:300]!r}>"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def http(
    method: str,
    url: str,
    body: Any = None,
    *,
    headers: Mapping[str, str] | None = None,
    raw_body: bytes | None = None,
) -> HttpResponse:
    """One HTTP request, redirects not followed, error statuses returned."""
    data = raw_body if raw_body is not None else None
    all_headers = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        all_headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with _opener.open(request, timeout=30) as response:
            return HttpResponse(
                response.status, dict(response.headers), response.read()
            )
    except urllib.error.HTTPError as e:
        return HttpResponse(e.code, dict(e.headers), e.read())


class Homeserver:
    """One Synapse process: its config, its files and its lifecycle."""

    def __init__(
        self,
        name: str,
        workdir: Path,
        *,
        module_config: Mapping[str, Any] | None,
        public_baseurl: bool = True,
        extra_config: Mapping[str, Any] | None = None,
        port: int | None = None,
        extra_modules: Iterable[Mapping[str, Any]] = (),
        postgres_db: str | None = None,
    ) -> None:
        self.name = name
        self.postgres_db = postgres_db
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.server_name = f"{name}.test"
        self.shared_secret = f"secret-{name}"
        self.log_path = self.dir / "homeserver.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.config = self._build_config(module_config, public_baseurl, extra_config)
        self.config.setdefault("modules", []).extend(extra_modules)
        self.config_path = self.dir / "homeserver.yaml"
        self.write_config()
        with open(self.dir / "signing.key", "w") as f:
            write_signing_keys(f, [generate_signing_key("a")])

    def _build_config(
        self,
        module_config: Mapping[str, Any] | None,
        public_baseurl: bool,
        extra: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        log_config = self.dir / "log.yaml"
        log_config.write_text(yaml.safe_dump(_log_config(self.log_path)))
        unlimited = {"per_second": 10000, "burst_count": 10000}
        config: dict[str, Any] = {
            "server_name": self.server_name,
            "pid_file": str(self.dir / "homeserver.pid"),
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "x_forwarded": True,
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "database": self._database_config(),
            "log_config": str(log_config),
            "media_store_path": str(self.dir / "media"),
            "signing_key_path": str(self.dir / "signing.key"),
            "registration_shared_secret": self.shared_secret,
            "report_stats": False,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "bcrypt_rounds": 4,
            "rc_login": {
                "address": unlimited,
                "account": unlimited,
                "failed_attempts": unlimited,
            },
            "rc_registration": unlimited,
            "rc_message": unlimited,
        }
        if public_baseurl:
            config["public_baseurl"] = self.base_url + "/"
        if module_config is not None:
            config["modules"] = [{"module": MODULE, "config": dict(module_config)}]
        config.update(extra or {})
        return config

    def _database_config(self) -> dict[str, Any]:
        if self.postgres_db is None:
            return {
                "name": "sqlite3",
                "args": {"database": str(self.dir / "homeserver.db")},
            }
        return {
            "name": "psycopg2",
            "args": {
                "database": self.postgres_db,
                "user": "postgres",
                "host": "127.0.0.1",
                "cp_min": 1,
                "cp_max": 5,
            },
        }

    def write_config(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))

    @property
    def module_config(self) -> dict[str, Any]:
        """A copy of the module's config."""
        for module in self.config["modules"]:
            if module["module"] == MODULE:
                return copy.deepcopy(module["config"])
        raise KeyError(f"{self.name} does not load the module")

    def set_module_config(self, module_config: Mapping[str, Any]) -> None:
        """Change the module's config; it takes effect at the next (re)start."""
        for module in self.config["modules"]:
            if module["module"] == MODULE:
                module["config"] = dict(module_config)
        self.write_config()

    def start(self) -> None:
        log = open(self.dir / "stderr.log", "ab")
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        self.process = subprocess.Popen(
            self.command(),
            cwd=self.dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "synapse.app.homeserver",
            "-c",
            str(self.config_path),
        ]

    def wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.tail_logs()}"
                )
            try:
                if http("GET", self.url("/health")).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} did not start:\n{self.tail_logs()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()
        self.wait_ready(time.monotonic() + STARTUP_TIMEOUT)

    def tail_logs(self, lines: int = 60) -> str:
        text = ""
        for path in (self.dir / "stderr.log", self.log_path):
            if path.exists():
                text += f"--- {path}\n" + "\n".join(
                    path.read_text(errors="replace").splitlines()[-lines:]
                )
        return text

    def url(self, path: str) -> str:
        return self.base_url + path

    def logged_errors(self) -> list[str]:
        """The ERROR and CRITICAL lines of the homeserver's log, tracebacks included."""
        if not self.log_path.exists():
            return []
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [
            line
            for line in lines
            if " - ERROR - " in line or " - CRITICAL - " in line or "Traceback" in line
        ]

    def register_user(
        self, localpart: str, password: str, *, admin: bool = False
    ) -> str:
        """Register a user with the shared-secret admin API; returns the MXID."""
        endpoint = self.url("/_synapse/admin/v1/register")
        nonce = http("GET", endpoint).json()["nonce"]
        role = "admin" if admin else "notadmin"
        message = "\x00".join((nonce, localpart, password, role)).encode()
        mac = hmac.new(self.shared_secret.encode(), message, hashlib.sha1)
        body = {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": mac.hexdigest(),
        }
        response = http("POST", endpoint, body)
        if response.status != 200:
            raise RuntimeError(f"registering {localpart} on {self.name}: {response}")
        user_id: str = response.json()["user_id"]
        return user_id

    def password_login(
        self, user: str, password: str, *, version: str = "v3"
    ) -> HttpResponse:
        return http(
            "POST",
            self.url(f"/_matrix/client/{version}/login"),
            {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": user},
                "password": password,
            },
        )


def assert_no_errors_logged(homeservers: Iterable[Homeserver]) -> None:
    """Fail if any homeserver logged an error: a 500 or an unhandled exception
    somewhere in the tests, even one whose response looked right."""
    errors = [f"{hs.name}: {line}" for hs in homeservers for line in hs.logged_errors()]
    assert not errors, "Synapse logged errors:\n" + "\n".join(errors[:30])


def start_all(homeservers: Iterable[Homeserver]) -> None:
    """Start processes in parallel and wait until each answers /health."""
    servers = list(homeservers)
    for hs in servers:
        hs.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    try:
        for hs in servers:
            hs.wait_ready(deadline)
    except BaseException:
        stop_all(servers)
        raise


@contextlib.contextmanager
def running(homeservers: Iterable[Homeserver]) -> Iterator[None]:
    """Homeservers started together, checked for logged errors, then stopped."""
    servers = list(homeservers)
    start_all(servers)
    try:
        yield
        assert_no_errors_logged(servers)
    finally:
        stop_all(servers)


def address_limited(burst: int) -> dict[str, Any]:
    """Config for a login rate limit of ``burst`` per address, nothing else."""
    unlimited = {"per_second": 10000, "burst_count": 10000}
    return {
        "rc_login": {
            "address": {"per_second": 0.001, "burst_count": burst},
            "account": unlimited,
            "failed_attempts": unlimited,
        }
    }


def postgres(dbname: str = "postgres") -> Any:
    """An autocommit connection to the local PostgreSQL (trust auth)."""
    connection = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=dbname)
    connection.autocommit = True
    return connection


def create_postgres_database(name: str) -> None:
    """A fresh database on the local PostgreSQL, as Synapse requires it."""
    connection = postgres()
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(
            f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' LC_COLLATE 'C'"
            " LC_CTYPE 'C' TEMPLATE template0"
        )
    connection.close()


def drop_postgres_database(name: str) -> None:
    connection = postgres()
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    connection.close()


def stop_all(homeservers: Iterable[Homeserver]) -> None:
    for hs in homeservers:
        hs.stop()


def keep_logs(workdir: Path, destination: Path) -> None:
    """Copy the homeservers' logs where a developer or CI can read them."""
    for log in workdir.rglob("*.log"):
        target = destination / log.relative_to(workdir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(log, target)


def _log_config(path: Path) -> dict[str, Any]:
    return {
        "version": 1,
        "formatters": {
            "precise": {
                "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - "
                "%(request)s - %(message)s"
            }
        },
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "formatter": "precise",
                "filename": str(path),
                "filters": ["context"],
            }
        },
        "filters": {"context": {"()": "synapse.logging.context.LoggingContextFilter"}},
        "loggers": {"synapse.storage.SQL": {"level": "INFO"}},
        "root": {"level": "INFO", "handlers": ["file"]},
        "disable_existing_loggers": False,
    }
