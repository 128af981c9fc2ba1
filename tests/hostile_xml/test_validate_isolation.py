"""The public ``POST /validate`` bounds what libxml2's schema validation may cost (gateway/espi/isolation.py).

libxml2 takes more than quadratic time in the number of failing sibling elements (16,000 empty ``atom:entry`` took
176 s in-process) and keeps ~1.5 kB per schema error (100,000 failing attributes: 160 MiB). The endpoint validates in
a child process with CPU-time and memory limits, so a tiny hostile request is answered quickly with a clear 422 and
the web worker neither spins nor grows.
"""

from __future__ import annotations

import time
import tracemalloc

import falcon
import falcon.testing
import pytest

from gateway.config import Settings
from gateway.errors import register_error_handling
from gateway.resources.validate import ValidateResource
from tests.hostile_xml.payloads import ATOM_CLOSE, ATOM_OPEN

CPU_SECONDS = 2


@pytest.fixture
def client(tmp_path) -> falcon.testing.TestClient:
    settings = Settings(
        secret_key="k" * 40, var_dir=tmp_path, validate_cpu_seconds=CPU_SECONDS, validate_memory_mib=512
    )
    app = falcon.App()
    register_error_handling(app)
    app.add_route("/validate", ValidateResource(settings))
    return falcon.testing.TestClient(app)


def post(client: falcon.testing.TestClient, document: bytes) -> falcon.testing.Result:
    return client.simulate_post(
        "/validate",
        body=document,
        headers={"Content-Type": "application/atom+xml", "Content-Length": str(len(document))},
    )


def test_checklist_xml_thousands_of_failing_siblings_are_refused_within_the_cpu_limit(client):
    document = ATOM_OPEN + b"<entry/>" * 16_000 + ATOM_CLOSE  # 128 kB; minutes of libxml2 time unbounded
    started = time.monotonic()
    result = post(client, document)
    elapsed = time.monotonic() - started
    assert result.status_code == 422, result.text
    assert result.json["error"] == "too_costly"
    assert "CPU time" in result.json["description"]
    assert elapsed < CPU_SECONDS * 2 + 5, f"the request took {elapsed:.1f} s"


def test_checklist_xml_a_flood_of_schema_errors_does_not_grow_the_web_worker(client):
    document = ATOM_OPEN + b"<entry " + b" ".join(b'a%d="x"' % n for n in range(100_000)) + b"/>" + ATOM_CLOSE
    tracemalloc.start()
    try:
        result = post(client, document)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.status_code in (200, 422), result.text  # a capped report, or refused by the child's limits
    assert peak < 20 * len(document), f"the web process allocated {peak >> 20} MiB for {len(document)} bytes"


def test_an_ordinary_document_still_gets_its_report(client):
    result = post(client, ATOM_OPEN + ATOM_CLOSE)
    assert result.status_code == 200
    assert set(result.json) >= {"valid", "errors", "warnings", "findings", "summary"}
