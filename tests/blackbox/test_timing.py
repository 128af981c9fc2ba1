"""Checklist row 22, timing part: an unknown user and a wrong password cost the same (no user oracle).

The server runs with a realistic Argon2id cost (about 20 ms a verification) so that a path that skipped the password
check would stand out by an order of magnitude; medians of bounded, interleaved samples are compared with a generous
band, robust to a shared, noisy machine.
"""

from __future__ import annotations

import statistics
import time

import pytest

from gateway.storage.models import ClientRole
from tests.blackbox.conftest import LiveGateway, start_live
from tests.blackbox.test_checklist import SCOPE, token
from tests.conftest import EmptyDatabases

SAMPLES_PER_CUSTOMER = 6
CUSTOMERS = 3  # the per-user throttle allows 10 failures; spread the wrong-password samples over several users


@pytest.fixture(scope="module")
def realistic_hashing(tmp_path_factory: pytest.TempPathFactory, empty_databases: EmptyDatabases):
    with start_live(
        tmp_path_factory.mktemp(f"timing-{empty_databases.backend}"),
        empty_databases.new("timing"),
        GATEWAY_PASSWORD_TIME_COST="2",
        GATEWAY_PASSWORD_MEMORY_KIB="19456",
    ) as gateway:
        yield gateway


def timed(live: LiveGateway, client, form: dict[str, str]) -> tuple[float, int, bytes]:
    started = time.perf_counter()
    response = token(live, client, form)
    return time.perf_counter() - started, response.status_code, response.content


def test_row_22_unknown_user_and_wrong_password_take_similar_time(realistic_hashing):
    live = realistic_hashing
    unknown_times: list[float] = []
    wrong_times: list[float] = []
    bodies: set[bytes] = set()
    for n in range(CUSTOMERS):
        customer = live.customer(points=1)
        client = live.client(roles=(ClientRole.SELF_ACCESS,), grant_types=("password",), owner_customer_id=customer.id)
        form = {"grant_type": "password", "scope": SCOPE}
        timed(live, client, {**form, "username": customer.username, "password": "warm-up, wrong"})
        for i in range(SAMPLES_PER_CUSTOMER):  # interleaved, so drift in machine load hits both alike
            elapsed, status, body = timed(live, client, {**form, "username": f"nobody-{n}-{i}", "password": "pw-x"})
            assert status == 400
            unknown_times.append(elapsed)
            bodies.add(body)
            elapsed, status, body = timed(live, client, {**form, "username": customer.username, "password": "pw-x"})
            assert status == 400
            wrong_times.append(elapsed)
            bodies.add(body)
    assert len(bodies) == 1, "unknown user and wrong password must get byte-identical answers"
    unknown, wrong = statistics.median(unknown_times), statistics.median(wrong_times)
    # A verification costs ~20 ms here; skipping it on one path would make that path's median several times lower.
    assert 0.6 < unknown / wrong < 1.67, (
        f"median unknown user {unknown * 1000:.1f} ms, wrong password {wrong * 1000:.1f} ms"
    )
