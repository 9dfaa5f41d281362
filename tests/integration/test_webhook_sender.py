"""The webhook sender against real sockets: no request reaches a loopback, private or
link-local address (checked at connect time, on every address the name resolves to, connecting
to the address checked), unless the operator allows it; no redirect is followed; timeouts hold."""
from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from aggregator.webhooks.sender import Outgoing, WebhookSender
from tests.webhook_receiver import Receiver


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


def post(sender, url):
    return sender.send(Outgoing(url, b'{"id":"evt_1"}', {"webhook-id": "evt_1"}))


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "10.0.0.1", "169.254.169.254", "localhost",
                                  "[::ffff:127.0.0.1]", "127.1", "2130706433"])
def test_refused_at_connect_time_for_addresses_that_are_not_public(receiver, host):
    outcome = post(WebhookSender(allow_private=False), f"http://{host}:{receiver.server.server_port}/hooks")
    assert outcome.status_code is None and not outcome.delivered
    assert outcome.error == "address_refused"  # what the tenant sees; the operator's log has the detail:
    assert outcome.detail.startswith("AddressRefused:") and "AGGREGATOR_WEBHOOKS_ALLOW_PRIVATE" in outcome.detail
    assert receiver.received == []


def test_a_name_is_refused_if_any_of_its_addresses_is_private(receiver, monkeypatch):
    real = socket.getaddrinfo

    def two_addresses(host, *args, **kwargs):
        if host == "mixed.example":
            return real("93.184.216.34", *args, **kwargs) + real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", two_addresses)
    outcome = post(WebhookSender(allow_private=False), f"http://mixed.example:{receiver.server.server_port}/")
    assert outcome.error == "address_refused" and "127.0.0.1" in outcome.detail


def test_the_name_is_resolved_once_and_the_checked_address_connected_to(receiver, monkeypatch):
    """No second lookup between the check and the connection (DNS rebinding): the only lookup
    of the name is the checked one; the connection is made to the address it returned."""
    real, lookups = socket.getaddrinfo, []

    def resolver(host, *args, **kwargs):
        lookups.append(host)
        return real("127.0.0.1" if host == "hooks.example" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    outcome = post(WebhookSender(allow_private=True), f"http://hooks.example:{receiver.server.server_port}/in")
    assert outcome.status_code == 200 and lookups.count("hooks.example") == 1
    assert [r.headers["host"] for r in receiver.received] == [f"hooks.example:{receiver.server.server_port}"]


def test_allowed_by_the_operator_setting(receiver):
    sender = WebhookSender(allow_private=True)
    for host in ("127.0.0.1", "localhost"):
        assert post(sender, f"http://{host}:{receiver.server.server_port}/hooks").delivered
    assert len(receiver.received) == 2


def test_redirects_are_not_followed(receiver):
    class Redirecting(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(307)
            self.send_header("Location", receiver.url("/elsewhere"))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        outcome = post(WebhookSender(allow_private=True), f"http://127.0.0.1:{server.server_port}/")
    finally:
        server.shutdown()
        server.server_close()
    assert (outcome.status_code, outcome.delivered, outcome.error) == (307, False, "http_307")
    assert receiver.received == []


def test_a_receiver_that_does_not_answer_in_time_is_a_failed_attempt():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # accepts, never answers
    try:
        started = time.monotonic()
        outcome = post(WebhookSender(allow_private=True, total_timeout=0.5),
                       f"http://127.0.0.1:{listener.getsockname()[1]}/")
        assert time.monotonic() - started < 3
    finally:
        listener.close()
    assert outcome.status_code is None and outcome.error == "timeout" and "Timeout" in outcome.detail


def test_many_requests_are_sent_concurrently_in_order_of_the_outcomes(receiver):
    sender = WebhookSender(allow_private=True, workers=8)
    try:
        outcomes = sender.send_many([Outgoing(receiver.url(f"/{n}"), b"{}", {}) for n in range(50)])
    finally:
        sender.close()
    assert all(o.delivered for o in outcomes) and sorted(r.path for r in receiver.received) == sorted(
        f"/{n}" for n in range(50))


def test_a_long_answer_is_read_only_in_part_and_the_next_request_still_goes_through():
    class Talkative(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            body = b"x" * (1024 * 1024)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Talkative)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    sender = WebhookSender(allow_private=True)
    try:
        assert [post(sender, f"http://127.0.0.1:{server.server_port}/").status_code for _ in range(3)] == [200] * 3
    finally:
        server.shutdown()
        server.server_close()


def _certificate(tmp_path, name: str) -> tuple[str, str]:
    """A self-signed certificate for `name` (its own CA), and its key: PEM files."""
    from datetime import datetime, timedelta, timezone

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_https_to_the_pinned_address_still_uses_the_name_for_sni_and_the_certificate(tmp_path, monkeypatch):
    import ssl

    cert, key = _certificate(tmp_path, "hooks.example")
    receiver = Receiver()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    names = []
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    receiver.server.socket = context.wrap_socket(receiver.server.socket, server_side=True)
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: real(
        "127.0.0.1" if host == "hooks.example" else host, *a, **k))
    sender = WebhookSender(allow_private=True, ca_certs=cert)
    try:
        port = receiver.server.server_port
        assert post(sender, f"https://hooks.example:{port}/tls").status_code == 200
        mismatch = post(sender, f"https://127.0.0.1:{port}/tls")  # the certificate is not for this name
        assert mismatch.status_code is None and mismatch.error == "tls_error"
        assert "certificate" in mismatch.detail.lower()
    finally:
        receiver.close()
    assert names[0] == "hooks.example" and [r.path for r in receiver.received] == ["/tls"]


def test_deliveries_name_the_service_as_their_user_agent(receiver):
    from aggregator.outbound import VERSION

    assert post(WebhookSender(allow_private=True), receiver.url()).delivered
    [received] = receiver.received
    assert received.headers["user-agent"] == f"aggregator-webhooks/{VERSION}" and VERSION
    assert "urllib3" not in received.headers["user-agent"]
