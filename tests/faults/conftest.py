"""Fault tests: a PostgreSQL cluster of their own (they restart it), and helpers to run gateway commands.

The session's shared cluster (``tests/conftest.py``) serves every other test; restarting it under them would turn
their failures into noise, so the tests here that stop or restart PostgreSQL get a throwaway cluster of their own.
Without PostgreSQL's server binaries those tests are skipped with the reason printed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres import PostgresCluster, find_postgres_bin


@pytest.fixture(scope="package")
def own_cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster on 127.0.0.1 that these tests may stop, restart and kill."""
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's postgresql package")
    cluster = PostgresCluster(bin_dir)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()
