"""Mail transports are named by URLs (AGGREGATOR_SMTP_URL, AGGREGATOR_TEST_SMTP_URL)."""
from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.mail.mailer import BadMailUrl, FileSink, Mailer, SmtpTransport, transport_from_url


def test_smtp_with_login_and_starttls():
    server = transport_from_url("smtp://user%40x:p%3Ass@mail.example:587?starttls=1").server
    assert (server.host, server.port, server.starttls, server.implicit_tls) == ("mail.example", 587, True, False)
    assert (server.username, server.password) == ("user@x", "p:ss")
    assert "p:ss" not in repr(server)


def test_smtps_is_implicit_tls_on_465_by_default():
    server = transport_from_url("smtps://u:p@mail.example").server
    assert (server.port, server.implicit_tls, server.starttls) == (465, True, False)


def test_a_local_relay_needs_no_login():
    transport = transport_from_url("smtp://localhost:25?connections=4&timeout=5")
    assert isinstance(transport, SmtpTransport)
    assert (transport.server.username, transport.server.connections, transport.server.timeout) == (None, 4, 5.0)


def test_file_sinks_absolute_and_relative():
    assert transport_from_url("file:///srv/mail").directory == Path("/srv/mail")
    assert transport_from_url("file:var/mail").directory == Path("var/mail")


@pytest.mark.parametrize("url", ["http://x", "smtp://", "smtp://h?bogus=1", "smtp://h?connections=0",
                                 "smtp://h:99999", "file://host/dir", "file:"])
def test_anything_else_is_refused_with_the_url(url):
    with pytest.raises(BadMailUrl):
        transport_from_url(url)


def test_without_urls_both_modes_write_files_and_test_mode_has_its_own(tmp_path):
    mailer = Mailer.from_urls(None, None, "billing@localhost", tmp_path)
    assert isinstance(mailer.live, FileSink) and mailer.live.directory == tmp_path / "live"
    assert mailer.transport(False).directory == tmp_path / "test"
    mailer = Mailer.from_urls("smtp://relay:25", None, "billing@localhost", tmp_path)
    assert isinstance(mailer.live, SmtpTransport) and isinstance(mailer.test, FileSink)
