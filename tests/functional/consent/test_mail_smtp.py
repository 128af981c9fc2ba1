"""Grant and revoke mails reach a real SMTP server (aiosmtpd on 127.0.0.1) through the outbox worker (item 5)."""

from __future__ import annotations

from email import message_from_bytes
from email.message import Message

import pytest

from gateway.outbox.worker import run_once
from tests.support.live_gateway import LiveBrowser, live_gateway
from tests.support.server import free_port

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller", reason="aiosmtpd is not installed")


class _Collect:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.original_content)))
        return "250 OK"


@pytest.fixture
def smtp_server():
    handler = _Collect()
    controller = aiosmtpd_controller.Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, handler
    finally:
        controller.stop()


def test_grant_and_revoke_mails_are_received(tmp_path, smtp_server, empty_databases):
    controller, handler = smtp_server
    with live_gateway(
        tmp_path,
        database_url=empty_databases.new("mails"),
        extra_environ={
            "GATEWAY_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
            "GATEWAY_MAIL_FROM": "Gateway <gw@example.com>",
        },
    ) as gateway:
        browser = LiveBrowser(gateway)
        browser.grant_and_redeem()
        run_once(gateway.services)
        browser.revoke_latest()
        run_once(gateway.services)
    to_alice = [message["Subject"] for recipients, message in handler.messages if recipients == ["alice@example.com"]]
    to_app = [message["Subject"] for recipients, message in handler.messages if recipients == ["dev@app.example.com"]]
    assert to_alice == [
        "You shared your energy data with Energy App",
        "Energy App no longer has access to your energy data",
    ]
    assert to_app == ["New authorization for Energy App", "Authorization ended for Energy App"]


def test_a_down_smtp_server_does_not_break_the_consent(tmp_path, empty_databases):
    smtp = {"GATEWAY_SMTP_URL": f"smtp://127.0.0.1:{free_port()}"}
    with live_gateway(tmp_path, database_url=empty_databases.new("down_smtp"), extra_environ=smtp) as gateway:
        tokens = LiveBrowser(gateway).grant_and_redeem()
        report = run_once(gateway.services)
    assert tokens["access_token"] and report.delivery.retried == 2 and report.delivery.delivered == 1
