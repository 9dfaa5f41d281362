"""Where outbound requests may go (no server-side request forgery): pure rules over URLs and IP
addresses, for webhook endpoints and a tenant's own Stripe API address alike. The connections
(`outbound.connections`) apply `refusal` to every address a host resolves to, at connect time;
registration applies `check_url` to the URL as written (a literal address is checked there too).

An address is refused if it is loopback, private, link-local (the cloud metadata service
169.254.169.254 among them), multicast, reserved, unspecified, shared (CGNAT 100.64.0.0/10) or
otherwise not globally routable, including when written in an IPv6 form that embeds an IPv4
address (IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible, 6to4 2002::/16, NAT64 64:ff9b::/96,
Teredo)."""
from __future__ import annotations

import ipaddress
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
MAX_URL_LENGTH = 2048


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for or carries, if any."""
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address.sixtofour:
        return address.sixtofour
    if address.teredo:
        return address.teredo[1]  # the client's address
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if int(address) >> 32 == 0 and int(address) > 1:  # IPv4-compatible ::a.b.c.d (deprecated)
        return ipaddress.IPv4Address(int(address))
    return None


def refusal(address: IPAddress | str) -> str | None:
    """Why requests may not be sent to this address, or None if they may."""
    address = ipaddress.ip_address(address)
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "a scoped (link-local) IPv6 address"
        if address in _NAT64_LOCAL:
            return "a local-use NAT64 address"
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = refusal(embedded)
            return f"{reason} ({embedded}, embedded in an IPv6 address)" if reason else None
    checks = [("unspecified", address.is_unspecified), ("loopback", address.is_loopback),
              ("link-local", address.is_link_local), ("multicast", address.is_multicast),
              ("shared (CGNAT)", address in _CGNAT), ("reserved", address.is_reserved),
              ("private", address.is_private), ("not globally routable", not address.is_global)]
    reason = next((name for name, hit in checks if hit), None)
    return f"a {reason} address" if reason else None


class UnacceptableUrl(ValueError):
    pass


def check_url(url: str, *, allow_private: bool, what: str = "Webhooks are") -> SplitResult:
    """The URL, parsed, if requests may be sent to it (`what`: what would be sent, for the
    message): http or https, a host, no user or password, no fragment, a valid port, and not a
    literal address `refusal` refuses (unless `allow_private`). Host names are resolved and
    checked when connecting, not here."""
    if len(url) > MAX_URL_LENGTH:
        raise UnacceptableUrl(f"At most {MAX_URL_LENGTH} characters.")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise UnacceptableUrl("A URL holds no spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnacceptableUrl(f"Not a valid URL: {exc}.") from None
    if parts.scheme not in ("https", "http"):
        raise UnacceptableUrl("Use an https:// (or http://) URL.")
    if not parts.hostname:
        raise UnacceptableUrl("The URL has no host.")
    if parts.username is not None or parts.password is not None:
        raise UnacceptableUrl("No user name or password in the URL: authenticate deliveries by their signature.")
    if parts.fragment or url.endswith("#"):
        raise UnacceptableUrl("No #fragment: it is never sent.")
    if port == 0:
        raise UnacceptableUrl("Port 0 is not a port.")
    literal = _literal_address(parts.hostname)
    if literal is not None and not allow_private and (reason := refusal(literal)):
        raise UnacceptableUrl(f"{what} not sent to {reason}.")
    return parts


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None
