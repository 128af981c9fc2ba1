"""Sending a feed or an entry: validators and 304 (RFC 9110 §13), gzip (RFC 9110 §8.4), whole bodies and streams."""

from __future__ import annotations

import datetime as dt
import gzip
from collections.abc import Iterator

import falcon
import falcon.testing
import pytest

from gateway.errors import register_error_handling
from gateway.web.http_cache import Validators, send

UPDATED = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


class Body:
    """Chunks as the writer yields them, recording how far they were pulled and whether they were closed."""

    def __init__(self, chunks: list[bytes], *, fail_at: int | None = None) -> None:
        self.chunks = chunks
        self.fail_at = fail_at
        self.pulled = 0
        self.closed = False
        self._iterator = self._generate()

    def _generate(self) -> Iterator[bytes]:
        for number, chunk in enumerate(self.chunks):
            if number == self.fail_at:
                raise ValueError("UsagePoint 7: published and updated must be set")
            self.pulled += 1
            yield chunk

    def __iter__(self) -> Iterator[bytes]:
        return self._iterator

    def close(self) -> None:
        self.closed = True
        self._iterator.close()


class Sender:
    def __init__(self) -> None:
        self.body = Body([])

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send(req, resp, self.body, Validators(["entry", 1], UPDATED))


@pytest.fixture
def sender() -> Sender:
    return Sender()


@pytest.fixture
def client(sender: Sender) -> falcon.testing.TestClient:
    app = falcon.App()
    register_error_handling(app)
    app.add_route("/entry", sender)
    return falcon.testing.TestClient(app)


def test_a_body_of_one_chunk_is_sent_whole_with_its_length(client, sender):
    sender.body = Body([b"<entry>one</entry>\n"])
    result = client.simulate_get("/entry")
    assert result.status_code == 200
    assert result.headers["Content-Length"] == str(len(b"<entry>one</entry>\n"))
    assert result.content == b"<entry>one</entry>\n"
    assert sender.body.closed


def test_a_longer_body_streams_every_chunk_in_order(client, sender):
    chunks = [b"<feed>\n", b"<entry/>\n" * 3, b"</feed>\n"]
    sender.body = Body(chunks)
    result = client.simulate_get("/entry")
    assert "Content-Length" not in result.headers
    assert result.content == b"".join(chunks)
    assert sender.body.pulled == 3 and sender.body.closed


@pytest.mark.parametrize("chunks", [[b"<entry>one</entry>\n"], [b"<feed>\n", b"<entry/>\n", b"</feed>\n"]])
def test_gzip_whole_or_streamed(client, sender, chunks):
    sender.body = Body(chunks)
    result = client.simulate_get("/entry", headers={"Accept-Encoding": "gzip"})
    assert result.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(result.content) == b"".join(chunks)


def test_an_error_in_the_first_chunk_is_a_clean_500_not_a_cut_body(client, sender):
    sender.body = Body([b"<entry>", b"</entry>"], fail_at=0)
    result = client.simulate_get("/entry")
    assert result.status_code == 500
    assert result.json["error"] == "server_error"


def test_not_modified_never_starts_the_body(client, sender):
    etag = Validators(["entry", 1], UPDATED).etag
    sender.body = Body([b"<entry>one</entry>\n"])
    result = client.simulate_get("/entry", headers={"If-None-Match": etag})
    assert result.status_code == 304
    assert sender.body.pulled == 0 and sender.body.closed
