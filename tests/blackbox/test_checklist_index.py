"""Every row of the security checklist (/work/shared/SECURITY-CHECKLIST.md, rows 1-37) has a test named after it.

The checklist's rows are tested in several places (tests/blackbox/, tests/functional/consent/, tests/hostile_xml/);
this index reads the test sources under tests/ with :mod:`ast` (no import, no collection) and fails naming the row
whose ``test_row_NN_*`` function is missing, so a row cannot silently lose its test.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
ROWS = range(1, 38)
_ROW_TEST = re.compile(r"^test_row_(\d{2})_\w+$")


def _row_tests() -> dict[int, list[str]]:
    """Row number -> ``path::function`` of every ``test_row_NN_*`` function defined under tests/."""
    found: dict[int, list[str]] = defaultdict(list)
    for path in sorted(TESTS.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                match = _ROW_TEST.match(node.name)
                if match:
                    found[int(match.group(1))].append(f"{path.relative_to(TESTS)}::{node.name}")
    return found


ROW_TESTS = _row_tests()


@pytest.mark.parametrize("row", ROWS, ids=[f"row_{row:02d}" for row in ROWS])
def test_row_has_a_named_test(row: int) -> None:
    """A checklist row without any ``test_row_NN_*`` test is a gap in the security suite."""
    assert ROW_TESTS.get(row), (
        f"checklist row {row} has no test: add a test named test_row_{row:02d}_<what it checks> under tests/"
    )


def test_no_test_names_a_row_outside_the_checklist() -> None:
    """A ``test_row_NN`` beyond row 37 means the checklist and the tests disagree (a renumbered row)."""
    stray = {row: names for row, names in ROW_TESTS.items() if row not in ROWS}
    assert not stray, f"tests name checklist rows that do not exist: {stray}"
