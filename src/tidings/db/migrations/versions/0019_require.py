"""tidings_require(condition, message): a statement that fails unless its condition holds

Revision ID: 0019_require
Revises: 0016_fewer_writes
Create Date: 2026-12-05 01:30:00.000000

PostgreSQL only. The accept round's write is one statement in autocommit: the clients'
debits and the inserts of their messages (messages/admission_repository.py). Plain SQL
cannot fail on purpose, so a round where a balance did not cover its client's total could
only commit the debits that did, without their messages. With this function the statement
fails whole, with SQLSTATE TD001, and nothing of it is written; the caller then decides
each request in a transaction. A PL/pgSQL function is VOLATILE and never folded at planning,
as a constant `CASE … ELSE 1/0 END` would be. SQLite has no such statement and needs none.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019_require"
down_revision: str | None = "0016_fewer_writes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REQUIRE = """
CREATE OR REPLACE FUNCTION tidings_require(condition boolean, message text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF condition IS NOT TRUE THEN
    RAISE EXCEPTION '%', message USING ERRCODE = 'TD001';
  END IF;
  RETURN true;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(REQUIRE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS tidings_require(boolean, text)")
