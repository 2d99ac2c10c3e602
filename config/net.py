"""Who is the client? One rule for every rate limit in Atelier.

Behind a TLS proxy or load balancer every request arrives from the proxy's address, so a limit
keyed on `REMOTE_ADDR` puts the whole site in one bucket. The proxy appends the address it saw
to `X-Forwarded-For`, but anything to the left of what our own proxies wrote is whatever the
client sent, so the header can only be trusted as far as we count our proxies:

- `TRUSTED_PROXY_COUNT = 0` (no proxy, the default): `REMOTE_ADDR`; the header is ignored,
  so a spoofed `X-Forwarded-For` lands in the sender's own bucket.
- `TRUSTED_PROXY_COUNT = N`: the Nth address from the right of `X-Forwarded-For`, the one our
  outermost proxy saw. This is allauth's rule (`ALLAUTH_TRUSTED_PROXY_COUNT`, which settings set
  from the same value); our `AccountAdapter.get_client_ip` calls `client_ip` so allauth's limiter
  and ours cannot drift apart.

Where allauth raises `ImproperlyConfigured` (a 500) when the header has fewer than N entries,
we take its leftmost entry: the request passed fewer of our proxies (one was bypassed), and the
leftmost address is the farthest one a proxy of ours wrote. Without the header, or with an entry
that is not an IP address, `REMOTE_ADDR` is used.

allauth's own buckets then group IPv6 addresses by /64 (`ALLAUTH_RATE_LIMIT_IPV6_PREFIX`); a limiter
of ours keyed on this address should do the same if it wants the same strength.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    """The client's address, as a normalised IP string (see the module docstring for the rule)."""
    remote = request.META.get("REMOTE_ADDR", "") or ""
    count = settings.TRUSTED_PROXY_COUNT
    if count > 0:
        forwarded = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",")]
        forwarded = [part for part in forwarded if part]
        if forwarded:
            candidate = _clean(forwarded[-count] if len(forwarded) >= count else forwarded[0])
            if candidate:
                return candidate
    return _clean(remote) or remote


def _clean(value: str) -> str:
    """A valid IP address in canonical form, or '' (ports and IPv6 brackets are dropped)."""
    value = value.strip()
    if value.startswith("["):  # [2001:db8::1]:443
        value = value[1:].split("]", 1)[0]
    elif value.count(":") == 1:  # 203.0.113.7:51234
        value = value.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return ""


def address_key(address: str) -> str:
    """A rate-limit bucket for a client address (from `client_ip`): IPv6 by /64, which one person
    usually holds whole (as allauth's limiter does), IPv4 as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"ip:{address}"
    if ip.version == 6:
        return f"ip:{ipaddress.ip_network(f'{ip}/64', strict=False)}"
    return f"ip:{ip}"
