"""The mailer adapter: the only module that speaks SMTP.

A transport is named by a URL:

* ``smtp://user:pass@host:587?starttls=1``: SMTP, upgraded with STARTTLS when asked;
* ``smtps://user:pass@host:465``: SMTP over implicit TLS;
* ``smtp://localhost:25``: a local relay, no TLS, no login;
* ``file:///abs/dir`` or ``file:var/mail`` (relative to the working directory): a *sink* that
  writes each message to ``<dir>/<message id>.eml`` and emails nobody (the embedded default).

Query parameters of SMTP URLs: ``starttls=1``, ``timeout=`` (seconds, default 30) and
``connections=`` (how many connections a batch is spread over, default 1).

A transport sends a batch over connections it keeps open between batches (one per thread),
reconnects once when a connection was dropped, and answers each message with None (sent) or a
`SendFailure`: *permanent* (a 5xx answer: this message will never be accepted, no retry) or
*transient* (a 4xx answer, a lost or refused connection, a timeout: retry later).
"""
from __future__ import annotations

import os
import re
import smtplib
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Protocol, Sequence
from urllib.parse import parse_qs, unquote, urlsplit


class SendFailure(Exception):
    """A message that was not accepted; `permanent`: never retry it."""

    permanent = False

    def __init__(self, message: str, *, code: int | None = None):
        super().__init__(message)
        self.code = code


class PermanentFailure(SendFailure):
    permanent = True


class TransientFailure(SendFailure):
    pass


class NotAttempted(TransientFailure):
    """The batch ran out of time before this message: it was not sent, nor tried."""


#: What a transport answers for each message: None (accepted) or why not.
Outcome = SendFailure | None


class Transport(Protocol):
    def send_many(self, messages: Sequence[Message], deadline: float | None = None) -> list[Outcome]:
        """Send each message, in order -> one outcome each. Messages not yet begun when
        `deadline` (time.monotonic()) has passed are answered NotAttempted."""

    def close(self) -> None: ...


class BadMailUrl(ValueError):
    pass


def classify(code: int, text: str) -> SendFailure:
    """An SMTP reply code to a failure: 5xx permanent, anything else transient."""
    kind = PermanentFailure if 500 <= code < 600 else TransientFailure
    return kind(f"{code} {text}".strip(), code=code)


# --- the file sink ----------------------------------------------------------------------------

class FileSink:
    """Writes each message as an .eml file named after its Message-ID (a message written again
    replaces itself): what a first run uses, and test mode's default."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"FileSink({str(self.directory)!r})"

    def send_many(self, messages: Sequence[Message], deadline: float | None = None) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for message in messages:
            if deadline is not None and time.monotonic() > deadline:
                outcomes.append(NotAttempted("the batch ran out of time"))
                continue
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                name = re.sub(r"[^A-Za-z0-9._-]", "_", str(message["Message-ID"] or "message").strip("<>"))
                path = self.directory / f"{name}.eml"
                partial = path.with_suffix(".eml.partial")
                partial.write_bytes(bytes(message))
                os.replace(partial, path)
                outcomes.append(None)
            except OSError as exc:
                outcomes.append(TransientFailure(f"writing the message failed: {exc}"))
        return outcomes

    def close(self) -> None:
        pass


# --- SMTP -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    implicit_tls: bool = False
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0
    connections: int = 1

    def __repr__(self) -> str:  # never the password
        scheme = "smtps" if self.implicit_tls else "smtp"
        user = f"{self.username}:***@" if self.username else ""
        return f"SmtpServer({scheme}://{user}{self.host}:{self.port}, starttls={self.starttls})"


class _ConnectionLost(Exception):
    pass


class SmtpTransport:
    """Sends over SMTP, one kept-open connection per thread (a batch spread over
    `connections` threads when there are several)."""

    def __init__(self, server: SmtpServer):
        self.server = server
        self._local = threading.local()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._opened: list[smtplib.SMTP] = []

    def __repr__(self) -> str:
        return f"SmtpTransport({self.server!r})"

    def send_many(self, messages: Sequence[Message], deadline: float | None = None) -> list[Outcome]:
        parts = max(1, min(self.server.connections, len(messages)))
        if parts == 1:
            return self._send_on_one_connection(messages, deadline)
        chunks = [list(range(i, len(messages), parts)) for i in range(parts)]
        pool = self._executor()
        outcomes: list[Outcome] = [None] * len(messages)
        for chunk, results in zip(chunks, pool.map(
                lambda idx: self._send_on_one_connection([messages[i] for i in idx], deadline), chunks)):
            for i, result in zip(chunk, results):
                outcomes[i] = result
        return outcomes

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.server.connections, thread_name_prefix="smtp")
            return self._pool

    def _send_on_one_connection(self, messages: Sequence[Message], deadline: float | None) -> list[Outcome]:
        outcomes: list[Outcome] = []
        unreachable: SendFailure | None = None
        for message in messages:
            if unreachable is not None:  # the server cannot be reached: do not try each message
                outcomes.append(TransientFailure(str(unreachable)))
            elif deadline is not None and time.monotonic() > deadline:
                outcomes.append(NotAttempted("the batch ran out of time"))
            else:
                try:
                    self._send(message)
                    outcomes.append(None)
                except _ConnectionLost as exc:
                    unreachable = TransientFailure(str(exc))
                    outcomes.append(unreachable)
                except SendFailure as failure:
                    outcomes.append(failure)
        return outcomes

    def _send(self, message: Message) -> None:
        """Send one message, on a fresh connection once more if the kept one was dropped."""
        for attempt in (1, 2):
            connection = self._connection()
            try:
                refused = connection.send_message(message)
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = next(iter(exc.recipients.values()))
                raise classify(code, _text(text)) from None
            except smtplib.SMTPResponseException as exc:  # sender refused, data refused, 421 …
                if exc.smtp_code == 421:  # the server is closing the connection
                    self._drop()
                raise classify(exc.smtp_code, _text(exc.smtp_error)) from None
            except OSError as exc:  # dropped, timed out, reset (smtplib's errors are OSErrors too)
                self._drop()
                if attempt == 2 or not isinstance(exc, (smtplib.SMTPServerDisconnected, ConnectionError)):
                    raise _ConnectionLost(f"connection lost while sending: {type(exc).__name__}: {exc}") from None
                continue
            if refused:  # some recipients refused (we send to one: not reached in practice)
                code, text = next(iter(refused.values()))
                raise classify(code, _text(text))
            return

    def _connection(self) -> smtplib.SMTP:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        server = self.server
        try:
            if server.implicit_tls:
                connection = smtplib.SMTP_SSL(server.host, server.port, timeout=server.timeout,
                                              context=ssl.create_default_context())
            else:
                connection = smtplib.SMTP(server.host, server.port, timeout=server.timeout)
                if server.starttls:
                    connection.starttls(context=ssl.create_default_context())
            if server.username:
                connection.login(server.username, server.password or "")
        except (OSError, smtplib.SMTPException) as exc:
            raise _ConnectionLost(f"cannot connect to {server!r}: {type(exc).__name__}: {exc}") from None
        self._local.connection = connection
        with self._pool_lock:
            self._opened.append(connection)
        return connection

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with self._pool_lock:
                if connection in self._opened:
                    self._opened.remove(connection)
            try:
                connection.close()
            except OSError:
                pass

    def close(self) -> None:
        """Quit every connection kept open (by any thread)."""
        with self._pool_lock:
            opened, self._opened = self._opened, []
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        for connection in opened:
            try:
                connection.quit()
            except (OSError, smtplib.SMTPException):
                connection.close()
        self._local = threading.local()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# --- building transports from URLs ----------------------------------------------------------------

def transport_from_url(url: str) -> Transport:
    """A transport for `url` (see the module's documentation); BadMailUrl if it is not one."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        path = unquote(parts.path) if not parts.netloc else None
        if not path:
            raise BadMailUrl(f"{url!r}: a file sink is file:///absolute/dir or file:relative/dir")
        return FileSink(Path(path))
    if scheme not in ("smtp", "smtps"):
        raise BadMailUrl(f"{url!r}: use smtp://, smtps:// or file:")
    if not parts.hostname:
        raise BadMailUrl(f"{url!r}: no host")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"starttls", "timeout", "connections"}
    if unknown:
        raise BadMailUrl(f"{url!r}: unknown parameters {sorted(unknown)}")
    try:
        port = parts.port or (465 if scheme == "smtps" else 25)
        timeout = float(query.get("timeout", 30))
        connections = int(query.get("connections", 1))
    except ValueError as exc:
        raise BadMailUrl(f"{url!r}: {exc}") from None
    if not 1 <= connections <= 32 or not 0 < timeout <= 600:
        raise BadMailUrl(f"{url!r}: connections is 1-32, timeout 0-600 seconds")
    return SmtpTransport(SmtpServer(
        host=parts.hostname, port=port, implicit_tls=scheme == "smtps",
        starttls=query.get("starttls", "0").lower() in ("1", "true", "yes"),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        timeout=timeout, connections=connections))


@dataclass
class Mailer:
    """Live mode's transport and test mode's (so test mode never emails real customers), and
    the operator's default sender address."""

    live: Transport
    test: Transport
    default_from: str = "billing@localhost"

    @classmethod
    def from_urls(cls, live_url: str | None, test_url: str | None, default_from: str, mail_dir: Path) -> "Mailer":
        live = transport_from_url(live_url) if live_url else FileSink(mail_dir / "live")
        test = transport_from_url(test_url) if test_url else FileSink(mail_dir / "test")
        return cls(live, test, default_from)

    def transport(self, livemode: bool) -> Transport:
        return self.live if livemode else self.test

    def send_many(self, messages: Sequence[Message], livemode: bool,
                  deadline: float | None = None) -> list[Outcome]:
        return self.transport(livemode).send_many(messages, deadline)

    def close(self) -> None:
        self.live.close()
        if self.test is not self.live:
            self.test.close()
