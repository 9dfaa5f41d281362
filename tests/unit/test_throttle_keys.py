"""What the throttle counts failures against: the client's address and the key's prefix."""
from __future__ import annotations

import secrets

import pytest

from aggregator.throttle import address_of, limits_of, prefix_of, presented_key


def test_an_ipv6_address_counts_by_its_64_and_an_ipv4_one_by_itself():
    assert address_of("2001:db8:1:2:aaaa::1") == address_of("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert address_of("2001:db8:1:3::1") != address_of("2001:db8:1:2::1")
    assert address_of("203.0.113.7") == address_of("::ffff:203.0.113.7") == "203.0.113.7"
    assert address_of(None) == address_of("not an address") == "unknown"


def test_keys_sharing_their_kind_and_first_secret_characters_share_a_prefix_and_no_others_do():
    key = "agg_prov_live_" + secrets.token_urlsafe(30)
    assert prefix_of(key) == prefix_of(key[:22] + secrets.token_urlsafe(30))
    assert prefix_of(key) != prefix_of("agg_prov_live_" + secrets.token_urlsafe(30))
    assert prefix_of(key) != prefix_of(key.replace("_live_", "_test_"))
    assert key[14:22] not in prefix_of(key)  # stored hashed
    assert prefix_of("Basic dXNlcjpwYXNz") == prefix_of("Basic dXNlcjpwYXNzZWQ=")  # another form: its start


def test_the_key_is_read_from_the_authorization_header_and_a_missing_header_tries_nothing():
    assert presented_key("Bearer agg_x ") == "agg_x"
    assert presented_key("Basic abc") == "Basic abc"
    assert presented_key(None) is None


def test_limits_are_written_in_the_limits_notation_and_empty_or_off_turns_them_off():
    assert [(i.amount, i.get_expiry()) for i in limits_of("100/second;5000/minute")] == [(100, 1), (5000, 60)]
    assert limits_of("") == limits_of(" off ") == []
    with pytest.raises(ValueError, match="AGGREGATOR_KEY_RATE_LIMIT: '100 a minute' is not a rate limit"):
        limits_of("100 a minute", "AGGREGATOR_KEY_RATE_LIMIT")
