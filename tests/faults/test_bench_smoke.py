"""A few seconds of ``bench/bench_load.py``: the mixed load (tokens, feeds, refreshes, revocations) answers no 5xx,
every revocation takes effect at once, and every BatchList arrives exactly once. The 60 s run belongs to bench/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_short_mixed_load_on_sqlite_has_no_server_errors() -> None:
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
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5xx: 0" in result.stdout
