"""A real SMTP server for the tests (aiosmtpd, on a free local port, in a thread), keeping what
it received and answering RCPT for chosen addresses with chosen replies (451 once, 550 …)."""
from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.content, policy=policy.default)


class RecordingHandler:
    def __init__(self):
        self.received: list[Received] = []
        self._replies: dict[str, list[str]] = {}  # recipient -> replies to RCPT, one per attempt
        self._always: dict[str, str] = {}  # recipient -> the reply to every RCPT
        self._lock = threading.Lock()

    def refuse_once(self, address: str, reply: str = "451 4.3.0 Try again later") -> None:
        with self._lock:
            self._replies.setdefault(address, []).append(reply)

    def refuse_always(self, address: str, reply: str = "550 5.1.1 No such user") -> None:
        with self._lock:
            self._always[address] = reply

    def to(self, address: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if address in r.rcpt_tos]

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self._lock:
            if address in self._always:
                return self._always[address]
            if self._replies.get(address):
                return self._replies[address].pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self._lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmtpServer:
    """Started and stopped by the tests: `url` is what AGGREGATOR_SMTP_URL would be."""

    def __init__(self, port: int | None = None):
        self.handler = RecordingHandler()
        self.port = port or free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?timeout=10"

    def __enter__(self) -> "SmtpServer":
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()
