"""exports: files kept in the database (export_files, export_file_chunks)

Revision ID: 0018_export_files
Revises: 0015_optouts
Create Date: 2026-12-04 16:20:00.000000

Export files move from one host's disk into the database, so that any api process on any
host serves any export (docs/scale-out.md). When the files are to be kept in the database
(`TIDINGS_EXPORT_STORAGE` unset with no `TIDINGS_EXPORT_DIR`, or `database`), the files of
built exports found in the export directory this migration can see are copied in, 1 MiB at
a time (never a whole file in memory). A built export whose files are not there (they were
on another host's disk) goes back to `pending` and a worker builds it again from its
messages; its client gets `export.ready` a second time. The files on disk are left where
they are (delete the directory once the upgrade is done). With `TIDINGS_EXPORT_STORAGE=
directory` nothing is moved.

Downgrade drops the tables: files kept only in the database are lost, and their exports
answer "file missing" until deleted or expired.
"""

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import context, op

import tidings.db.base

revision: str = "0018_export_files"
down_revision: str | None = "0015_optouts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHUNK_BYTES = 1024 * 1024


def upgrade() -> None:
    op.create_table(
        "export_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", tidings.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_files")),
    )
    op.create_index("ix_export_files_key_format", "export_files", ["key", "format"], unique=False)
    op.create_table(
        "export_file_chunks",
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["export_files.id"],
            name=op.f("fk_export_file_chunks_file_id_export_files"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("file_id", "seq", name=op.f("pk_export_file_chunks")),
    )
    if not context.is_offline_mode():
        _move_files_in(op.get_bind())


def downgrade() -> None:
    op.drop_table("export_file_chunks")
    op.drop_index("ix_export_files_key_format", table_name="export_files")
    op.drop_table("export_files")


# --- Moving the files in ----------------------------------------------------------------------

_exports = sa.table(
    "exports",
    sa.column("id", sa.Integer()),
    sa.column("key", sa.String()),
    sa.column("state", sa.String()),
    sa.column("row_count", sa.Integer()),
    sa.column("sizes", sa.JSON()),
    sa.column("attempts", sa.Integer()),
    sa.column("lease_owner", sa.String()),
    sa.column("locked_until", tidings.db.base.UTCDateTime()),
    sa.column("finished_at", tidings.db.base.UTCDateTime()),
    sa.column("last_error", sa.String()),
)
_files = sa.table(
    "export_files",
    sa.column("id", sa.Integer()),
    sa.column("key", sa.String()),
    sa.column("format", sa.String()),
    sa.column("complete", sa.Boolean()),
    sa.column("size", sa.BigInteger()),
    sa.column("updated_at", tidings.db.base.UTCDateTime()),
)
_chunks = sa.table(
    "export_file_chunks",
    sa.column("file_id", sa.Integer()),
    sa.column("seq", sa.Integer()),
    sa.column("data", sa.LargeBinary()),
)


def _old_directory(bind: sa.Connection) -> Path | None:
    """Where `LocalStorage` kept the files (exports/storage.py, `default_directory`), or None
    when they are to stay on disk. Read from the environment, as the processes do."""
    storage = os.environ.get("TIDINGS_EXPORT_STORAGE")
    given = os.environ.get("TIDINGS_EXPORT_DIR")
    if storage == "directory" or (storage is None and given):
        return None
    if given:
        return Path(given)
    database = bind.engine.url.database
    in_memory = not database or database == ":memory:" or database.startswith("file:")
    if bind.dialect.name == "sqlite" and database and not in_memory:
        path = Path(database)
        return path.with_name(f"{path.stem}-exports")
    return Path("tidings-exports")


def _move_files_in(bind: sa.Connection) -> None:
    directory = _old_directory(bind)
    if directory is None:
        return
    built = bind.execute(
        sa.select(_exports.c.id, _exports.c.key, _exports.c.sizes).where(
            _exports.c.state == "ready", _exports.c.row_count > 0
        )
    ).all()
    now = datetime.now(UTC)
    for export_id, key, sizes in built:
        paths = {fmt: directory / f"{key}.{fmt}" for fmt in sizes or {}}
        if paths and all(path.is_file() for path in paths.values()):
            for fmt, path in paths.items():
                _copy(bind, key, fmt, path, now)
            continue
        # Its files are on another host (or lost): a worker builds it again.
        bind.execute(
            sa.update(_exports)
            .where(_exports.c.id == export_id)
            .values(
                state="pending",
                row_count=None,
                sizes=None,
                attempts=0,
                lease_owner=None,
                locked_until=None,
                finished_at=None,
                last_error="rebuilt: its files were not on the host that moved them in",
            )
        )


def _copy(bind: sa.Connection, key: str, fmt: str, path: Path, now: datetime) -> None:
    file_id = bind.execute(
        sa.insert(_files)
        .values(key=key, format=fmt, complete=False, size=0, updated_at=now)
        .returning(_files.c.id)
    ).scalar_one()
    size = 0
    with path.open("rb") as source:
        seq = 0
        while data := source.read(CHUNK_BYTES):
            bind.execute(sa.insert(_chunks).values(file_id=file_id, seq=seq, data=data))
            size += len(data)
            seq += 1
    bind.execute(sa.update(_files).where(_files.c.id == file_id).values(complete=True, size=size))
