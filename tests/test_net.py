"""config.net.client_ip: the client address every rate limit uses (TRUSTED_PROXY_COUNT)."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from config.net import client_ip


def request(remote: str = "203.0.113.9", forwarded: str | None = None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


@pytest.mark.parametrize(
    ("proxies", "remote", "forwarded", "expected"),
    [
        (0, "203.0.113.9", None, "203.0.113.9"),
        (0, "203.0.113.9", "198.51.100.1", "203.0.113.9"),  # no proxy: the header is the client's own words
        (1, "10.0.0.2", "198.51.100.1", "198.51.100.1"),
        (1, "10.0.0.2", "192.0.2.77, 198.51.100.1", "198.51.100.1"),  # spoofed entry on the left ignored
        (2, "10.0.0.3", "192.0.2.77, 198.51.100.1, 10.0.0.2", "198.51.100.1"),
        (2, "10.0.0.3", "198.51.100.1", "198.51.100.1"),  # fewer entries than proxies: leftmost, no 500
        (1, "10.0.0.2", None, "10.0.0.2"),  # no header: the peer
        (1, "10.0.0.2", "not-an-ip", "10.0.0.2"),
        (1, "10.0.0.2", "198.51.100.1:51234", "198.51.100.1"),
        (1, "10.0.0.2", "[2001:db8::1]:443", "2001:db8::1"),
        (1, "10.0.0.2", "2001:DB8:0::1", "2001:db8::1"),
    ],
)
def test_client_ip_follows_the_trusted_proxy_count(settings, proxies, remote, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = proxies

    assert client_ip(request(remote, forwarded)) == expected


def test_allauth_uses_the_same_rule(settings):
    from allauth.account.adapter import get_adapter

    settings.TRUSTED_PROXY_COUNT = 2
    short = request("10.0.0.3", "198.51.100.1")  # allauth's own reader raises ImproperlyConfigured here

    assert get_adapter().get_client_ip(short) == client_ip(short) == "198.51.100.1"
