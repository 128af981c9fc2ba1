"""Short, bounded runs of the fuzz targets in CI (docs/fuzzing.md explains long runs).

With atheris installed, each target runs under libFuzzer for :data:`RUNS` inputs or :data:`SECONDS` seconds, whichever
comes first, from a small seed corpus (hostile and valid documents); a crash, an assertion, a 10 s input or an RSS
over 1 GiB fails the test with libFuzzer's report. Without atheris (it ships wheels for CPython on Linux x86-64 only)
the same ``TestOneInput`` functions are driven by hypothesis instead, from the same seeds plus random bytes, so the
properties are checked either way.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import atheris_safe_xml, atheris_validator

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RUNS = 20_000
SECONDS = 15
TARGETS = {"safe_xml": HERE / "atheris_safe_xml.py", "validator": HERE / "atheris_validator.py"}

ATOM = b'<feed xmlns="http://www.w3.org/2005/Atom" xmlns:espi="http://naesb.org/espi">'
SEEDS: dict[str, bytes] = {
    "feed": ATOM + b"<id>urn:uuid:0</id><title>t</title><updated>2025-01-01T00:00:00Z</updated>"
    b'<entry><id>urn:uuid:1</id><title>u</title><link rel="self" href="http://x/UsagePoint/1"/>'
    b"<content><espi:UsagePoint><espi:ServiceCategory><espi:kind>0</espi:kind></espi:ServiceCategory>"
    b"</espi:UsagePoint></content><published>2025-01-01T00:00:00Z</published>"
    b"<updated>2025-01-01T00:00:00Z</updated></entry></feed>",
    "doctype": b'<!DOCTYPE feed [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]>' + ATOM + b"<title>&b;</title></feed>",
    "external": b'<!DOCTYPE feed SYSTEM "http://127.0.0.1:9/x.dtd">' + ATOM + b"</feed>",
    "pi_comment": b'<?xml version="1.0" encoding="UTF-8"?><!-- c --><?pi x?>' + ATOM + b"<![CDATA[x]]></feed>",
    "deep": ATOM + b"<entry>" * 40 + b"</entry>" * 40 + b"</feed>",
    "attributes": ATOM + b"<entry " + b" ".join(b'a%d="1"' % n for n in range(20)) + b"/></feed>",
    "latin1": b'<?xml version="1.0" encoding="ISO-8859-1"?>' + ATOM + b"<title>caf\xe9</title></feed>",
    "utf16": '<?xml version="1.0" encoding="UTF-16"?><feed xmlns="http://www.w3.org/2005/Atom"/>'.encode("utf-16"),
    "xinclude": ATOM.replace(b">", b' xmlns:xi="http://www.w3.org/2001/XInclude">', 1)
    + b'<xi:include href="file:///etc/hostname" parse="text"/></feed>',
    "truncated": ATOM + b"<entry><title>cut",
}

HAVE_ATHERIS = importlib.util.find_spec("atheris") is not None


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_fuzz_target_bounded_run(target: str, tmp_path: Path) -> None:
    """libFuzzer over the target for a bounded number of inputs; no crash, no assertion, no slow input."""
    if not HAVE_ATHERIS:
        pytest.skip("atheris is not installed (pip install atheris): the hypothesis drive below still runs")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, seed in SEEDS.items():
        (corpus / name).write_bytes(seed)
    result = subprocess.run(
        [
            sys.executable,
            str(TARGETS[target]),
            f"-runs={RUNS}",
            f"-max_total_time={SECONDS}",
            "-timeout=10",
            "-rss_limit_mb=1024",
            "-max_len=8192",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=SECONDS + 60,
    )
    assert result.returncode == 0, f"fuzz target {target} found a failure:\n{result.stderr[-4000:]}"
    assert "Done" in result.stderr or "INFO" in result.stderr, result.stderr[-2000:]


seeds = st.sampled_from(list(SEEDS.values()))
mutated = st.tuples(seeds, st.integers(0, 400), st.binary(max_size=40)).map(
    lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :]
)
inputs = st.one_of(seeds, mutated, st.binary(max_size=400))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs)
def test_safe_xml_target_under_hypothesis(data: bytes) -> None:
    """The safe parser's fuzz property, driven by hypothesis (runs with or without atheris)."""
    atheris_safe_xml.TestOneInput(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs)
def test_validator_target_under_hypothesis(data: bytes) -> None:
    """The validator's fuzz property, driven by hypothesis (runs with or without atheris)."""
    atheris_validator.TestOneInput(data)
