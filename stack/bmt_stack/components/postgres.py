"""PostgreSQL from Debian's packages, in a cluster of its own under the state folder."""

from __future__ import annotations

import glob
import shutil
import signal
import subprocess
from pathlib import Path

from bmt_common.events import DATABASES
from bmt_stack import install, process
from bmt_stack.components.base import Component, is_root
from bmt_stack.config import HOST, NODE_LINK

# The role every service and Debezium log in with; CREATEDB so tests can make scratch databases.
APP_ROLE = "bmt"
OS_USER = "postgres"  # PostgreSQL refuses to run as root


def bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), reverse=True)
    return Path(found[0]).parent if found else None


class Postgres(Component):
    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: SIGTERM would wait for clients to leave
    start_timeout = 60.0

    @property
    def port(self) -> int:
        return self.settings.port_postgres

    @property
    def socket_dir(self) -> Path:
        return self.settings.run / "postgres"

    def _bin(self, tool: str) -> str:
        found = bin_dir()
        if found is None:
            raise process.StartError("PostgreSQL binaries are missing after install")
        return str(found / tool)

    def install(self) -> None:
        if bin_dir() is not None:
            return
        install.apt_install(["postgresql"])

    def run_as(self) -> str | None:
        return OS_USER if is_root() else None

    def _own(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if is_root():
            shutil.chown(path, OS_USER, OS_USER)

    def prepare(self) -> None:
        self._own(self.socket_dir)
        if (self.data_dir / "PG_VERSION").exists():
            # After a crash of the postmaster its children live on for a moment (each in a
            # session of its own, so killing the group misses them), still attached to the
            # shared memory a new postmaster refuses to share: let them go first.
            process.wait_for(lambda: not self._crashed_server_lingers(), 30.0)
            return
        self._own(self.data_dir)
        pwfile = self.settings.run / "postgres.pw"
        pwfile.write_text(self.settings.postgres_password.get_secret_value() + "\n")
        if is_root():
            shutil.chown(pwfile, OS_USER, OS_USER)
        try:
            process.run(
                [
                    self._bin("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    f"--pwfile={pwfile}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ],
                log_file=self.log_file,
                user=self.run_as(),
            )
        finally:
            pwfile.unlink(missing_ok=True)
        with (self.data_dir / "pg_hba.conf").open("a") as hba:
            # Debezium streams over a replication connection: allow it on loopback only.
            hba.write("host replication all 127.0.0.1/32 scram-sha-256\n")

    def _crashed_server_lingers(self) -> bool:
        try:
            old = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            old = None
        if old is not None and Path(f"/proc/{old}").exists():  # even a zombie counts
            return True
        return bool(process.running_in(self.data_dir))

    def command(self) -> list[str]:
        return [
            self._bin("postgres"),
            "-D",
            str(self.data_dir),
            "-c",
            f"listen_addresses={HOST}",
            "-c",
            f"port={self.port}",
            "-c",
            f"unix_socket_directories={self.socket_dir}",
            "-c",
            "wal_level=logical",
            "-c",
            "max_wal_senders=20",
            "-c",
            "max_replication_slots=20",
            "-c",
            "max_connections=300",
            # A dev and test cluster: the OS cache survives a kill -9 of postgres, which is
            # all the fault tests need; skipping fsync keeps the suite fast.
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
        ]

    def health(self) -> str | None:
        result = subprocess.run(
            [self._bin("pg_isready"), "-h", HOST, "-p", str(self.port), "-t", "2"],
            capture_output=True,
            text=True,
            check=False,
        )
        return None if result.returncode == 0 else (result.stdout.strip() or "not accepting")

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser over the cluster's own socket."""
        return process.run(
            [
                self._bin("psql"),
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-c",
                sql,
            ]
        )

    def _allow_node_network(self) -> None:
        """Pods of the local cluster reach the server from the node's address (the CNI bridge
        masquerades them); managed here rather than at initdb, so existing clusters get it too."""
        hba = self.data_dir / "pg_hba.conf"
        line = f"host all all {NODE_LINK} scram-sha-256\n"
        if line not in hba.read_text():
            with hba.open("a") as out:
                out.write(line)
            self.psql("SELECT pg_reload_conf()")

    def after_start(self) -> None:
        self._allow_node_network()
        password = self.settings.postgres_password.get_secret_value().replace("'", "''")
        self.psql(
            f"""DO $$ BEGIN
                 IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                   CREATE ROLE {APP_ROLE} LOGIN REPLICATION CREATEDB PASSWORD '{password}';
                 END IF;
               END $$;"""
        )
        existing = set(self.psql("SELECT datname FROM pg_database").split())
        for database in DATABASES:
            if database not in existing:
                self.psql(f"CREATE DATABASE {database} OWNER {APP_ROLE}")

    def dsn(self, database: str) -> str:
        password = self.settings.postgres_password.get_secret_value()
        return f"postgresql://{APP_ROLE}:{password}@{HOST}:{self.port}/{database}"
