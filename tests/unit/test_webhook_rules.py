"""The pure rules of webhooks: Standard Webhooks signatures, where webhooks may be sent, and
the retry schedule."""
from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook

from aggregator.outbound.addresses import UnacceptableUrl, check_url, refusal
from aggregator.webhooks import signing
from aggregator.webhooks.schedule import MAX_ATTEMPTS, RETRY_SCHEDULE, retry_delay


def test_a_secret_is_whsec_and_base64_of_32_random_bytes():
    secret = signing.new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    assert secret != signing.new_secret()


@given(body=st.binary(max_size=300).map(lambda b: b.decode("latin-1").encode()),
       timestamp=st.integers(min_value=0, max_value=2**33))
def test_signatures_are_those_the_standard_webhooks_library_makes(body, timestamp):
    secret = signing.new_secret()
    when = datetime.fromtimestamp(timestamp, timezone.utc)
    assert signing.signature(secret, "evt_1", timestamp, body) == Webhook(secret).sign("evt_1", when, body.decode())


def test_signed_headers_carry_one_signature_per_secret_in_force():
    headers = signing.signed_headers(["whsec_" + base64.b64encode(b"a" * 24).decode(),
                                      "whsec_" + base64.b64encode(b"b" * 24).decode()], "evt_1", 1700000000, b"{}")
    assert headers["webhook-id"] == "evt_1" and headers["webhook-timestamp"] == "1700000000"
    assert [s[:3] for s in headers["webhook-signature"].split(" ")] == ["v1,", "v1,"]


@pytest.mark.parametrize("secret", ["abc", "whsec_not*base64"])
def test_a_malformed_secret_is_refused(secret):
    with pytest.raises(signing.MalformedSecret):
        signing.secret_key(secret)


@pytest.mark.parametrize("address, reason", [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"), ("10.0.0.1", "private"),
    ("172.16.5.4", "private"), ("192.168.1.1", "private"), ("169.254.169.254", "link-local"),
    ("fe80::1", "link-local"), ("fd00::1", "private"), ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("100.64.0.1", "CGNAT"), ("100.127.255.254", "CGNAT"),
    ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"), ("192.0.2.1", "private"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:169.254.169.254", "link-local"), ("::ffff:10.1.2.3", "private"),
    ("2002:7f00:1::", "loopback"), ("2002:a9fe:a9fe::1", "link-local"), ("64:ff9b::7f00:1", "loopback"),
    ("64:ff9b::a00:1", "private"), ("64:ff9b:1::1", "NAT64"), ("::127.0.0.1", "loopback"),
])
def test_addresses_webhooks_are_never_sent_to(address, reason):
    assert reason in (refusal(address) or "")


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:93.184.216.34",
                                     "2002:5db8:d822::1", "64:ff9b::5db8:d822"])
def test_public_addresses_are_allowed(address):
    assert refusal(address) is None


@pytest.mark.parametrize("url", ["https://example.com/hooks", "http://example.com:8080/x?y=1", "https://[2606:4700::1]/"])
def test_urls_accepted_at_registration(url):
    assert check_url(url, allow_private=False).hostname


@pytest.mark.parametrize("url, words", [
    ("ftp://example.com/", "https://"), ("example.com/hooks", "https://"), ("https:///x", "no host"),
    ("https://u:p@example.com/", "password"), ("https://u@example.com/", "password"),
    ("https://example.com/#x", "fragment"), ("https://example.com:99999/", "Not a valid URL"),
    ("https://example.com/a b", "spaces"), ("http://127.0.0.1/", "loopback"), ("http://[::1]:80/", "loopback"),
    ("http://10.0.0.1/", "private"), ("http://169.254.169.254/latest/meta-data", "link-local"),
    ("http://[::ffff:127.0.0.1]/", "loopback"), ("https://" + "a" * 2050 + ".com/", "2048"),
])
def test_urls_refused_at_registration(url, words):
    with pytest.raises(UnacceptableUrl, match=words):
        check_url(url, allow_private=False)


def test_the_operator_may_allow_private_literal_addresses():
    assert check_url("http://127.0.0.1:8000/x", allow_private=True).port == 8000
    with pytest.raises(UnacceptableUrl):  # but never credentials or other schemes
        check_url("http://u:p@127.0.0.1/", allow_private=True)


def test_retries_back_off_exponentially_for_about_three_days_then_stop():
    waits = [retry_delay(n) for n in range(1, MAX_ATTEMPTS)]
    assert waits == list(RETRY_SCHEDULE) and waits[0] == timedelta(seconds=5)
    assert all(later >= earlier for earlier, later in zip(waits, waits[1:]))
    assert timedelta(days=2, hours=18) <= sum(waits, timedelta()) <= timedelta(days=3, hours=6)
    assert retry_delay(MAX_ATTEMPTS) is None
    with pytest.raises(ValueError):
        retry_delay(0)
