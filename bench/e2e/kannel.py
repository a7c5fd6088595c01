"""Kannel 1.4.5 (the Debian package) as the reference gateway: bearerbox + smsbox.

The config is written to the round's temp dir and both boxes run as subprocesses of the
bench (not the Debian service). One SMPP transceiver bind with `max-pending-submits = 10`
(the window), `dlr-storage = sqlite3` in a file of that dir (durable), `internal` (in
memory) or `pgsql` (a fresh database the caller makes). Clients use smsbox's `sendsms`
interface with `dlr-mask=31` and a `dlr-url`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench.e2e.procs import HOST, Child, free_port, wait_port

BEARERBOX = "/usr/sbin/bearerbox"
SMSBOX = "/usr/sbin/smsbox"
USERNAME = "bench"
PASSWORD = "bench"
DLR_STORAGES = ("sqlite3", "internal", "pgsql")

# The table of Kannel's example (doc/examples/dlr-sqlite3.conf), plus the index a deployment
# adds: receipts are looked up by (smsc, ts), and a scan per receipt would make Kannel slower
# than it is in production.
DLR_TABLE = """
CREATE TABLE dlr (
  smsc varchar(40), ts varchar(40), destination varchar(40), source varchar(40),
  service varchar(40), url varchar(255), mask int(10), status int(10), boxc varchar(40)
);
CREATE INDEX dlr_smsc_ts ON dlr (smsc, ts);
"""
DLR_TABLE_PG = DLR_TABLE.replace("int(10)", "integer")


def kannel_available() -> str | None:
    """None when Kannel can run here, else why not (after trying apt-get as root)."""
    if os.path.exists(BEARERBOX) and os.path.exists(SMSBOX):
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "kannel is not installed (apt-get install kannel, as root)"
    done = subprocess.run(
        ["apt-get", "install", "-y", "kannel"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    if done.returncode != 0 or not os.path.exists(BEARERBOX):
        return f"apt-get install kannel failed: {done.stderr.strip()[-500:]}"
    return None


DLR_DB_GROUP = """group = dlr-db
id = dlrdb
table = dlr
field-smsc = smsc
field-timestamp = ts
field-destination = destination
field-source = source
field-service = service
field-url = url
field-mask = mask
field-status = status
field-boxc-id = boxc
"""


@dataclass(frozen=True, slots=True)
class PgsqlTarget:
    """Where Kannel's pgsql DLR store lives: a fresh database of the bench's cluster."""

    host: str
    port: int
    user: str
    password: str
    database: str

    @classmethod
    def from_url(cls, url: str) -> PgsqlTarget:
        parts = urlsplit(url)
        return cls(
            host=parts.hostname or HOST,
            port=parts.port or 5432,
            user=parts.username or "postgres",
            password=parts.password or "",
            database=parts.path.lstrip("/"),
        )


def create_pgsql_dlr_table(url: str) -> None:
    """The same table and index, in PostgreSQL (through psql: no event loop needed here)."""
    subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", DLR_TABLE_PG],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


@dataclass(frozen=True, slots=True)
class KannelPorts:
    admin: int
    smsbox: int
    sendsms: int


def render_config(
    workdir: Path,
    ports: KannelPorts,
    smsc_port: int,
    *,
    dlr_storage: str = "sqlite3",
    window: int = 10,
    log_level: int = 2,
    pgsql: PgsqlTarget | None = None,
) -> str:
    """kannel.conf: core, the DLR store's connection (sqlite3 or pgsql), one SMPP smsc,
    smsbox, a sendsms user."""
    if dlr_storage not in DLR_STORAGES:
        raise ValueError(f"dlr storage {dlr_storage!r} is not one of {DLR_STORAGES}")
    groups = [
        f"""group = core
admin-port = {ports.admin}
admin-password = {PASSWORD}
status-password = {PASSWORD}
admin-interface = {HOST}
admin-allow-ip = "{HOST}"
smsbox-port = {ports.smsbox}
smsbox-interface = {HOST}
box-allow-ip = "{HOST}"
log-file = "{workdir / "bearerbox.log"}"
log-level = {log_level}
dlr-storage = {dlr_storage}
""",
    ]
    if dlr_storage == "sqlite3":
        groups.append(
            f"""group = sqlite3-connection
id = dlrdb
database = "{workdir / "kannel-dlr.sqlite3"}"
max-connections = 1
"""
        )
    elif dlr_storage == "pgsql":
        if pgsql is None:
            raise ValueError("dlr-storage pgsql needs a database")
        groups.append(
            f"""group = pgsql-connection
id = dlrdb
host = {pgsql.host}
port = {pgsql.port}
username = {pgsql.user}
password = "{pgsql.password}"
database = {pgsql.database}
max-connections = 1
"""
        )
    if dlr_storage != "internal":
        groups.append(DLR_DB_GROUP)
    groups += [
        f"""group = smsc
smsc = smpp
smsc-id = sim
host = {HOST}
port = {smsc_port}
transceiver-mode = true
smsc-username = kannel
smsc-password = secret
system-type = ""
max-pending-submits = {window}
enquire-link-interval = 30
reconnect-delay = 1
""",
        f"""group = smsbox
bearerbox-host = {HOST}
bearerbox-port = {ports.smsbox}
sendsms-port = {ports.sendsms}
sendsms-interface = {HOST}
log-file = "{workdir / "smsbox.log"}"
log-level = {log_level}
""",
        f"""group = sendsms-user
username = {USERNAME}
password = {PASSWORD}
user-allow-ip = "{HOST}"
max-messages = 1
""",
        """group = sms-service
keyword = default
text = "No service specified"
""",
    ]
    return "\n".join(groups)


SQLITE_JOURNALS = ("delete", "wal")


def create_dlr_table(path: Path, journal: str = "delete") -> None:
    """The DLR table; `journal` "wal" switches the file to WAL (the mode persists in the file;
    Kannel's connection keeps SQLite's default synchronous=FULL: one fsync per commit)."""
    if journal not in SQLITE_JOURNALS:
        raise ValueError(f"journal {journal!r} is not one of {SQLITE_JOURNALS}")
    db = sqlite3.connect(path)
    try:
        db.executescript(DLR_TABLE)
        db.execute(f"PRAGMA journal_mode={journal}")
    finally:
        db.close()


@dataclass
class Kannel:
    """bearerbox and smsbox for one round, on a fresh DLR store."""

    workdir: Path
    smsc_port: int
    dlr_storage: str = "sqlite3"
    window: int = 10
    sqlite_journal: str = "delete"
    pgsql_url: str | None = None  # dlr-storage pgsql: a fresh database, made by the caller
    ports: KannelPorts = field(
        default_factory=lambda: KannelPorts(free_port(), free_port(), free_port())
    )
    children: list[Child] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.ports.sendsms}"

    def start(self, timeout: float = 30.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "kannel.conf"
        config.write_text(
            render_config(
                self.workdir,
                self.ports,
                self.smsc_port,
                dlr_storage=self.dlr_storage,
                window=self.window,
                pgsql=PgsqlTarget.from_url(self.pgsql_url) if self.pgsql_url else None,
            ),
            "utf-8",
        )
        if self.dlr_storage == "sqlite3":
            create_dlr_table(self.workdir / "kannel-dlr.sqlite3", self.sqlite_journal)
        elif self.dlr_storage == "pgsql":
            assert self.pgsql_url is not None
            create_pgsql_dlr_table(self.pgsql_url)
        bearerbox = Child(
            "bearerbox",
            [BEARERBOX, "-v", "4", str(config)],
            self.workdir / "bearerbox.out",
            cwd=self.workdir,
        ).start()
        self.children.append(bearerbox)
        wait_port(self.ports.smsbox, timeout, [bearerbox])
        smsbox = Child(
            "smsbox",
            [SMSBOX, "-v", "4", str(config)],
            self.workdir / "smsbox.out",
            cwd=self.workdir,
        ).start()
        self.children.append(smsbox)
        wait_port(self.ports.sendsms, timeout, [bearerbox, smsbox])

    @property
    def pids(self) -> list[int]:
        return [child.pid for child in self.children if child.running]

    def log_tail(self) -> str:
        logs = [self.workdir / name for name in ("bearerbox.log", "smsbox.log")]
        tails = []
        for path in logs:
            with contextlib.suppress(OSError):
                tails.append(f"--- {path.name}\n{path.read_text('utf-8', 'replace')[-1500:]}")
        return "\n".join(tails + [f"--- {c.name}\n{c.log_tail(1500)}" for c in self.children])

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
