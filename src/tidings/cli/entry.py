"""The console script's entry point: the collector held off while the command loads.

Importing the application allocates a few hundred thousand long-lived objects (FastAPI and
pydantic models, SQLAlchemy tables and mappers, the numbering data), and CPython's collector
walks the growing heap again and again while it does: measured on the development machine,
over half of an admin command's CPU (1.4 s of 2.5 s). Nothing loaded here is garbage, so the
collector waits until the command is imported, and what was loaded is then frozen (moved
out of the collector's reach without a pass over it); long-running commands tune it further
for a server (tidings.runtime).
"""

from __future__ import annotations

import gc


def main() -> None:
    gc.disable()
    from tidings.cli.main import main as run

    gc.freeze()
    gc.enable()
    run()
