"""A throwaway PostgreSQL cluster: for the tests marked ``postgres`` and for
``benchmarks/workers.py``, or for a plugin author's own tests of many workers.

Debian's ``postgresql`` package (``make test`` installs it) puts ``initdb`` and ``pg_ctl`` in
``/usr/lib/postgresql/<version>/bin``. The cluster lives in a temporary folder, listens on a
Unix socket in that folder only (no TCP port to collide with), trusts local connections, and is
stopped and deleted after the session. PostgreSQL refuses to run as root, so as root the
cluster runs as ``nobody``.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

USER = "autotl"


class ClusterUnavailable(RuntimeError):
    """PostgreSQL is not installed or did not start; the message says why."""


def find_bindir() -> Path:
    """The newest installed server's bin folder, or $AUTOTL_PG_BINDIR."""
    if os.environ.get("AUTOTL_PG_BINDIR"):
        return Path(os.environ["AUTOTL_PG_BINDIR"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name)
                   if Path(p).parent.parent.name.isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise ClusterUnavailable("PostgreSQL's initdb was not found (install Debian's postgresql "
                             "package; `make test` does)")


class Cluster:
    """``start()`` → ``url(db)`` / ``create_database()`` → ``stop()``."""

    def __init__(self) -> None:
        self.bindir = find_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="autotl-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root
        self._run_as: dict[str, int] = {}
        self._databases = 0
        if os.geteuid() == 0:
            import pwd

            nobody = pwd.getpwnam("nobody")
            self._run_as = {"user": nobody.pw_uid, "group": nobody.pw_gid}
            os.chown(self.root, nobody.pw_uid, nobody.pw_gid)

    def _pg(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(self.bindir / tool), *args], capture_output=True,
                                text=True, timeout=120, cwd=self.root, check=False,
                                **self._run_as)
        if result.returncode != 0:
            raise ClusterUnavailable(f"{tool} failed ({result.returncode}): "
                                     f"{(result.stderr or result.stdout).strip()[-2000:]}")
        return result

    def start(self) -> Cluster:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self._pg("initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "-E", "UTF8",
                 "--no-sync", "-N")
        options = (f"-c listen_addresses='' -c unix_socket_directories='{self.socket_dir}' "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c max_connections=200")
        self._pg("pg_ctl", "-D", str(self.data), "-o", options, "-l",
                 str(self.root / "server.log"), "-w", "-t", "60", "start")

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres", password: str | None = None) -> str:
        """A SQLAlchemy/Optuna URL over the cluster's Unix socket (a password, if given, is
        accepted and ignored: the cluster trusts local connections)."""
        auth = f"{USER}:{password}" if password else USER
        return f"postgresql://{auth}@/{database}?host={self.socket_dir}"

    def create_database(self) -> str:
        """A fresh, empty database; its name."""
        import psycopg

        self._databases += 1
        name = f"test{self._databases}"
        with psycopg.connect(host=str(self.socket_dir), user=USER, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return name
