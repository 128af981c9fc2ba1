"""Regenerate migration 0001 from the current models (only while 0001 has not been released).

python -m tests.support.regenerate_initial_migration
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from alembic import command

from gateway.storage.engine import make_engine
from gateway.storage.migrate import MIGRATIONS_DIR, alembic_config


def main() -> None:
    for old in (MIGRATIONS_DIR / "versions").glob("0001_*.py"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'empty.sqlite3'}")
        command.revision(alembic_config(engine), message="initial schema", autogenerate=True, rev_id="0001")
        engine.dispose()


if __name__ == "__main__":
    main()
