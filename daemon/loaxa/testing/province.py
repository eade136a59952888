"""The province server in a child process, and a real PostgreSQL, for tests and benchmarks.

    server = ServerProcess(tmp_path, province_config(tmp_path, broker.port)).start()
    server.wait_ready()            # database migrated, HTTP listening: server.http_url
    server.kill()                  # SIGKILL mid-burst; start() again resumes the session

`start_postgres(tmp_path)` runs Debian's PostgreSQL (initdb, pg_ctl) on a
free loopback port in a folder of its own, as the `postgres` user when the
tests run as root (initdb refuses root); `PostgresMissing` when it is not
installed.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from loaxa.testing.broker import free_port

READY = re.compile(r"listening on (http://\S+)")


def province_config(root: Path, broker_port: int, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "province": {"id": "sim"},
        "broker": {"host": "127.0.0.1", "port": broker_port, "reconnect_max_s": 2},
        "data_dir": str(root / "province-data"),
        "http": {"host": "127.0.0.1", "port": 0},
    }
    for key, value in overrides.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    return config


@dataclass
class ServerProcess:
    """`loaxa province serve` on `config`; its log under `root`."""

    root: Path
    config: dict[str, Any]
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    http_url: str | None = None
    runs: int = field(default=0)

    @property
    def config_path(self) -> Path:
        return self.root / "province.yaml"

    def start(self) -> ServerProcess:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config, allow_unicode=True), encoding="utf-8")
        self.runs += 1
        self.log_path = self.root / f"province-{self.runs}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "loaxa", "province", "serve", "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return self

    def wait_ready(self, timeout_s: float = 30.0) -> str:
        """The HTTP URL, once the server has migrated its database and listens."""
        deadline = time.monotonic() + timeout_s
        assert self.log_path is not None
        while time.monotonic() < deadline:
            found = READY.search(self.log_path.read_text(errors="replace"))
            if found:
                self.http_url = found.group(1)
                return self.http_url
            if not self.alive():
                raise RuntimeError(f"province server exited:\n{self.log()}")
            time.sleep(0.05)
        raise RuntimeError(f"province server not ready in {timeout_s:g} s:\n{self.log()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int | None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.root.glob("province-*.log")))[-6000:]


class PostgresMissing(RuntimeError):
    """Debian's postgresql package is not installed."""


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def have_postgres() -> bool:
    return _pg_bin() is not None


@dataclass
class Postgres:
    directory: Path
    port: int
    bin: Path
    user: str | None  # run as this user (root cannot)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *cmd: str) -> None:
        argv = [str(self.bin / cmd[0]), *cmd[1:]]
        if self.user:
            argv = ["runuser", "-u", self.user, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {done.stdout}{done.stderr}")

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=on"
        self._run(
            "pg_ctl",
            "-D",
            str(self.directory / "data"),
            "-l",
            str(self.directory / "pg.log"),
            "-o",
            opts,
            "-w",
            "start",
        )

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.directory / "data"), "-m", "fast", "-w", "stop")
        except RuntimeError:
            pass


def start_postgres(tmp_path: Path) -> Postgres:
    """initdb in a fresh folder and start; `stop()` when done."""
    pg_bin = _pg_bin()
    if pg_bin is None:
        raise PostgresMissing("PostgreSQL is not installed (Debian package postgresql)")
    directory = Path(tmp_path) / "postgres"
    directory.mkdir(parents=True)
    user = "postgres" if os.getuid() == 0 else None
    if user:
        entry = pwd.getpwnam(user)
        for path in (Path(tmp_path), *Path(tmp_path).parents):
            mode = os.stat(path).st_mode
            if not mode & 0o001:
                os.chmod(path, (mode & 0o7777) | 0o001)  # let postgres traverse to its folder
        shutil.chown(directory, entry.pw_uid, entry.pw_gid)
    pg = Postgres(directory, free_port(), pg_bin, user)
    pg._run("initdb", "-A", "trust", "-U", "postgres", "-D", str(directory / "data"))
    pg.start()
    return pg
