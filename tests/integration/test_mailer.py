"""The SMTP transport against a real server (aiosmtpd): refusals classified, a dropped
connection reopened, an unreachable server reported as transient for the whole batch."""
from __future__ import annotations

from email.message import EmailMessage

from aiosmtpd.controller import Controller

from aggregator.mail.mailer import PermanentFailure, TransientFailure, transport_from_url
from tests.smtp_server import RecordingHandler, SmtpServer, free_port


def _message(to: str, n: int = 0) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "billing@example.com", to, f"m{n}"
    message["Message-ID"] = f"<m{n}@example.com>"
    message.set_content("hello")
    return message


def test_a_batch_is_sent_and_refusals_are_classified_per_message():
    with SmtpServer() as smtp:
        smtp.handler.refuse_always("gone@example.com", "550 5.1.1 No such user")
        smtp.handler.refuse_once("busy@example.com", "451 4.3.0 Try later")
        transport = transport_from_url(smtp.url)
        try:
            outcomes = transport.send_many([_message("a@example.com", 1), _message("gone@example.com", 2),
                                            _message("busy@example.com", 3), _message("b@example.com", 4)])
        finally:
            transport.close()
    assert outcomes[0] is None and outcomes[3] is None
    assert isinstance(outcomes[1], PermanentFailure) and outcomes[1].code == 550
    assert isinstance(outcomes[2], TransientFailure) and not outcomes[2].permanent and outcomes[2].code == 451
    assert [r.rcpt_tos for r in smtp.handler.received] == [["a@example.com"], ["b@example.com"]]


def test_a_dropped_connection_is_reopened_and_the_message_sent():
    port = free_port()
    first, second = RecordingHandler(), RecordingHandler()
    server = Controller(first, hostname="127.0.0.1", port=port)
    server.start()
    transport = transport_from_url(f"smtp://127.0.0.1:{port}?timeout=5")
    try:
        assert transport.send_many([_message("a@example.com", 1)]) == [None]
        server.stop()  # the kept connection dies with it
        server = Controller(second, hostname="127.0.0.1", port=port)
        server.start()
        assert transport.send_many([_message("a@example.com", 2)]) == [None]
    finally:
        transport.close()
        server.stop()
    assert len(first.received) == 1 and len(second.received) == 1


def test_an_unreachable_server_fails_the_whole_batch_transiently():
    transport = transport_from_url(f"smtp://127.0.0.1:{free_port()}?timeout=2")
    outcomes = transport.send_many([_message("a@example.com", n) for n in range(3)])
    assert all(isinstance(o, TransientFailure) and not o.permanent for o in outcomes)


def test_several_connections_share_a_batch_in_order():
    with SmtpServer() as smtp:
        transport = transport_from_url(smtp.url + "&connections=3")
        try:
            outcomes = transport.send_many([_message(f"c{n}@example.com", n) for n in range(10)])
        finally:
            transport.close()
    assert outcomes == [None] * 10
    assert sorted(r.rcpt_tos[0] for r in smtp.handler.received) == sorted(f"c{n}@example.com" for n in range(10))
