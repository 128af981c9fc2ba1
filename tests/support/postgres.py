"""A throwaway PostgreSQL cluster for the tests: initdb in a temp folder, listen on 127.0.0.1 only, stop at the end.

Debian's ``postgresql`` package installs the server binaries under ``/usr/lib/postgresql/<version>/bin``. Running as
root (as CI does) needs an unprivileged owner for the data directory, so the cluster then runs as ``postgres`` via
``runuser``.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["SERVER_BINARIES", "PostgresCluster", "find_postgres_bin", "why_no_postgres"]

SERVER_BINARIES = ("initdb", "pg_ctl")
"""What starting a throwaway cluster needs from the PostgreSQL server package."""


def find_postgres_bin() -> Path | None:
    """The newest PostgreSQL server bin folder installed, or ``None``."""
    explicit = os.environ.get("GATEWAY_PG_BIN")
    if explicit:
        return Path(explicit)
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(candidates[-1]).parent if candidates else None


def why_no_postgres() -> str | None:
    """Why this machine cannot start a throwaway cluster (which binaries are missing where), or ``None`` if it can."""
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        return (
            "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH, in GATEWAY_PG_BIN or under "
            "/usr/lib/postgresql/*/bin: install Debian's postgresql package"
        )
    missing = [name for name in SERVER_BINARIES if not os.access(bin_dir / name, os.X_OK)]
    if missing:
        return f"PostgreSQL server binaries missing or not executable in {bin_dir}: {', '.join(missing)}"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresCluster:
    """One server process with its own data directory and port."""

    def __init__(self, bin_dir: Path, base_dir: Path | None = None, *, port: int | None = None) -> None:
        self.bin_dir = bin_dir
        # Not under pytest's tmp folder: that one is private to root, and the server may run as ``postgres``.
        self.base_dir = base_dir or Path(tempfile.mkdtemp(prefix="gateway-pg-"))
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "socket"
        self.port = port or _free_port()
        self.user = "gateway"
        self.password = "gateway-test-password"
        self._as_postgres = os.geteuid() == 0

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = list(command)
        if self._as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.base_dir.chmod(0o755)
        self.socket_dir.mkdir(exist_ok=True)
        password_file = self.base_dir / "pwfile"
        password_file.write_text(self.password + "\n")
        if self._as_postgres:
            shutil.chown(self.base_dir, "postgres")
            shutil.chown(self.socket_dir, "postgres")
            shutil.chown(password_file, "postgres")
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            self.user,
            "--pwfile",
            str(password_file),
            "-A",
            "scram-sha-256",
            "-E",
            "UTF8",
            "--locale",
            "C",
        )
        self._pg_ctl_start()

    def _pg_ctl_start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.socket_dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-o",
            options,
            "-l",
            str(self.base_dir / "server.log"),
            "-w",
            "start",
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL did not start on 127.0.0.1:{self.port}; see {self.base_dir / 'server.log'}")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop", check=False)

    def destroy(self) -> None:
        """Stop the server and remove its files."""
        self.stop("immediate")
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def restart(self) -> None:
        """Stop and start the server (fault tests: the gateway must recover without a restart)."""
        self.stop()
        self._pg_ctl_start()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create (or recreate) database ``name`` and return its URL."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=self.user, password=self.password, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
