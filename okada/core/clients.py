"""Who is calling: the client's address behind the reverse proxies Okada trusts.

gunicorn sets REMOTE_ADDR to its peer and never takes the client's address from
X-Forwarded-For, so behind a proxy every request comes from the proxy's address. Anything keyed on
the address (the anonymous rate limit, login lockouts, /metrics' allowlist) would then treat
every client as one: one client's failed logins lock everybody out, and an allowlist holding the
proxy's address lets everybody in. OKADA_TRUSTED_PROXIES (from FORWARDED_ALLOW_IPS, the variable
gunicorn reads for the same proxies) says whose X-Forwarded-For to believe.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable

from django.conf import settings
from django.http import HttpRequest

log = logging.getLogger(__name__)

# Headers a reverse proxy adds. A request that carries one came through a proxy (or says it
# did): its REMOTE_ADDR is the proxy's, not the client's.
FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-IP")
# As WSGI names them: read from META, as request.headers builds a dict of every header first (the
# access log asks this on every request).
_FORWARDING_META = tuple("HTTP_" + name.upper().replace("-", "_") for name in FORWARDING_HEADERS)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    # An IPv4 peer of a dual-stack socket (gunicorn bound to [::]) is ::ffff:a.b.c.d: the IPv4
    # address it is, or the local proxy would be no trusted 127.0.0.1 and every IPv4 client
    # would fall in one IPv6 /64 (`subscriber`).
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped if mapped is not None else address


# A hop written with its port: "[2001:db8::1]:4711", "203.0.113.9:4711" (Azure's proxies).
_WITH_PORT = re.compile(r"^\[(?P<v6>[^\]]+)\](?::\d+)?$|^(?P<v4>\d{1,3}(?:\.\d{1,3}){3}):\d+$")


def _hop(text: str) -> IPAddress | None:
    text = text.strip().strip('"')
    if found := _WITH_PORT.match(text):
        text = found.group("v6") or found.group("v4")
    return _address(text)


def within(address: IPAddress, networks: Iterable[str]) -> bool:
    """Whether `address` is one of `networks` (addresses or networks, as the settings hold them)."""
    for network in networks:
        try:
            if address in ipaddress.ip_network(network, strict=False):
                return True
        except ValueError:  # the settings refuse these at start-up; a test may set anything
            log.warning("%r is not an address or network", network)
    return False


def client_address(request: HttpRequest) -> IPAddress | None:
    """The client's address, or None when it cannot be known for sure.

    A request without forwarding headers: the peer (REMOTE_ADDR). A request from a trusted proxy:
    the last address of X-Forwarded-For that is not itself a trusted proxy (each proxy appends
    its peer, with its port at times; the addresses before are the client's to write); None if
    the header is missing, or unreadable there ("unknown", an obfuscated name). A
    request that carries forwarding headers from any other peer: None, as that peer may be a
    proxy the settings do not know of."""
    meta = request.META
    peer = _address(meta.get("REMOTE_ADDR", ""))
    if peer is None or not any(name in meta for name in _FORWARDING_META):
        return peer  # straight from its client (a scraper on the proxy's host, too)
    trusted = settings.OKADA_TRUSTED_PROXIES
    if not within(peer, trusted):
        return None
    hop = None
    # Only X-Forwarded-For: a proxy appends to it the address it saw, so its last hops are the
    # proxies' own words. Forwarded and X-Real-IP are passed on as the client wrote them by a
    # proxy that does not set them (nginx's default): believing them would let a client name
    # any address, past its lockout and into /metrics' allowlist.
    for text in reversed(meta.get("HTTP_X_FORWARDED_FOR", "").split(",")):
        hop = _hop(text)
        if hop is None or not within(hop, trusted):
            return hop
    return hop  # every hop is a trusted proxy: the request started on one of them


def key_address(request: HttpRequest) -> str:
    """The address to count a caller's requests and failed logins against: the client's, or the
    peer's when the client's cannot be known (a caller cannot escape its limits by sending
    forwarding headers: from an untrusted peer they are ignored)."""
    client = client_address(request)
    return str(client) if client is not None else str(request.META.get("REMOTE_ADDR", "unknown"))


def subscriber(address: str) -> str:
    """What counts as one client for limits: an IPv4 address as is, an IPv6 one as its /64 (what
    one subscriber gets: counted per address, it would change the last bits on each request)."""
    ip = _address(address)
    if ip is None:
        return address
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
