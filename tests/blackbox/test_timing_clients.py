"""Client authentication timing: an unknown client id and a known one with a wrong secret cost the same (row 23).

Rows 23 and 25 make a bad secret answer 401 ``invalid_client`` and throttle guessing; if an unknown client id answered
measurably faster than a known one, the token endpoint would be an oracle for which client ids exist. Bounded,
interleaved samples (a few clients, each kept under the 10-failure throttle); medians compared with a generous band,
robust to a shared, noisy machine. Bodies must be byte-identical.
"""

from __future__ import annotations

import secrets
import statistics
import time

import requests

from tests.blackbox.conftest import LiveGateway
from tests.functional.oauth.helpers import basic

CLIENTS = 5
SAMPLES_PER_CLIENT = 8  # the per-client throttle allows 10 failures


def _timed(live: LiveGateway, session: requests.Session, client_id: str) -> tuple[float, int, bytes]:
    started = time.perf_counter()
    response = session.post(
        live.url("/oauth/token"),
        data={"grant_type": "client_credentials"},
        headers={"Authorization": basic(client_id, "wrong-secret-" + secrets.token_urlsafe(8))},
        timeout=10,
    )
    return time.perf_counter() - started, response.status_code, response.content


def test_row_23_unknown_and_known_client_ids_take_similar_time(live: LiveGateway) -> None:
    session = requests.Session()
    known_times: list[float] = []
    unknown_times: list[float] = []
    bodies: set[bytes] = set()
    for _ in range(CLIENTS):
        client = live.client()
        _timed(live, session, "gbc_warm-up-" + secrets.token_urlsafe(8))
        for _ in range(SAMPLES_PER_CLIENT):  # interleaved, so drift in machine load hits both alike
            elapsed, status, body = _timed(live, session, client.client_id)
            assert status == 401, f"row 23: a wrong secret answered {status}"
            known_times.append(elapsed)
            bodies.add(body)
            elapsed, status, body = _timed(live, session, "gbc_" + secrets.token_urlsafe(16))
            assert status == 401, f"row 23: an unknown client answered {status}"
            unknown_times.append(elapsed)
            bodies.add(body)
    assert len(bodies) == 1, f"row 23: unknown client and wrong secret get different answers: {bodies}"
    known, unknown = statistics.median(known_times), statistics.median(unknown_times)
    assert 0.5 < unknown / known < 2.0, (
        f"row 23: median unknown client {unknown * 1000:.2f} ms, known client with a wrong secret {known * 1000:.2f} ms"
    )
