"""A few seconds of ``bench/bench_load.py``: the mixed load (tokens, feeds, refreshes, revocations) answers no 5xx,
every revocation takes effect at once, and every BatchList arrives exactly once. The 60 s run belongs to bench/.

A run that never fetched a feed or never revoked a consent would prove none of that, so its per-operation table is read
too: the feed and revoke operations must have run and answered their success status.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

# One row of bench_load.py's table: "feed          37     12.3     45.6     78.9  {200: 37}"
# (operation, count, p50 ms, p99 ms, max ms, status codes with their counts).
ROW = re.compile(r"^(?P<kind>[a-z]+)\s+(?P<count>\d+)(?:\s+[\d.]+){3}\s+(?P<statuses>\{[^}]*\})$", re.MULTILINE)


@dataclasses.dataclass(frozen=True)
class Operation:
    count: int
    statuses: dict[int, int]


@dataclasses.dataclass(frozen=True)
class LoadRun:
    result: subprocess.CompletedProcess[str]
    operations: dict[str, Operation]

    @property
    def output(self) -> str:
        return self.result.stdout + self.result.stderr


def operations(stdout: str) -> dict[str, Operation]:
    """The per-operation rows printed by bench_load.py, by operation name."""
    return {
        match["kind"]: Operation(int(match["count"]), ast.literal_eval(match["statuses"]))
        for match in ROW.finditer(stdout)
    }


@pytest.fixture(scope="module")
def short_load() -> LoadRun:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_load.py"),
            "--sqlite",
            "--duration",
            "4",
            "--clients",
            "2",
            "--consents",
            "2",
            "--workers",
            "2",
            "--days",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    print(result.stdout)
    return LoadRun(result, operations(result.stdout))


def test_the_table_parser_reads_each_operation_row() -> None:
    table = (
        "operation   count   p50 ms   p99 ms   max ms  statuses\n"
        "feed           37     12.3     45.6     78.9  {200: 37, 401: 1}\n"
        "revoked         1      3.0      3.0      3.0  {401: 1}\n"
    )
    assert operations(table) == {"feed": Operation(37, {200: 37, 401: 1}), "revoked": Operation(1, {401: 1})}


def test_a_short_mixed_load_on_sqlite_has_no_server_errors(short_load: LoadRun) -> None:
    assert short_load.result.returncode == 0, short_load.output
    assert "5xx: 0" in short_load.result.stdout


@pytest.mark.parametrize(("kind", "success"), [("feed", 200), ("revoke", 204)])
def test_a_short_mixed_load_runs_the_operation(short_load: LoadRun, kind: str, success: int) -> None:
    operation = short_load.operations.get(kind, Operation(0, {}))
    assert operation.count > 0, f"no {kind} operation in the table:\n{short_load.output}"
    assert operation.statuses.get(success, 0) > 0, f"no {kind} answered {success}: {operation.statuses}"
