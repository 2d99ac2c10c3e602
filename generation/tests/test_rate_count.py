"""`rate_limits_count` counts the submit limits in one Redis round trip: it must count exactly as
django-ratelimit's own `get_usage` does (same keys, windows and answers), so either can be used
for the same limit, and keep counting when Redis is not there."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import RequestFactory
from django_ratelimit.core import get_usage

from generation import services

pytestmark = pytest.mark.django_db

GROUP = "test.rate-count"


def by_user(group, request):
    return f"user:{request.user.pk}"


def by_address(group, request):
    return f"ip:{request.META['REMOTE_ADDR']}"


@pytest.fixture
def request_of(alice):
    cache.clear()
    request = RequestFactory().post("/", REMOTE_ADDR="203.0.113.9")
    request.user = alice
    return request


def test_counts_as_get_usage_counts_and_limits_past_the_rate(request_of):
    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache

    from tests.harness import missing

    if not isinstance(caches["default"], RedisCache):
        missing("redis", "the one-round-trip count needs the Redis cache (REDIS_URL)")
    limits = ((by_user, "3/m"), (by_address, "5/m"))
    answers = [services.rate_limits_count(request_of, group=GROUP, limits=limits) for _ in range(4)]
    assert [[usage["count"] for usage in answer] for answer in answers] == [[1, 1], [2, 2], [3, 3], [4, 4]]
    assert [answer[0]["should_limit"] for answer in answers] == [False, False, False, True]
    assert not any(answer[1]["should_limit"] for answer in answers)
    assert 0 < answers[-1][0]["time_left"] <= 60 and answers[-1][0]["limit"] == 3
    # get_usage reads (and adds to) the very same counters.
    assert get_usage(request_of, group=GROUP, key=by_user, rate="3/m")["count"] == 4
    get_usage(request_of, group=GROUP, key=by_address, rate="5/m", increment=True)
    assert services.rate_limits_count(request_of, group=GROUP, limits=limits)[1]["count"] == 6


def test_without_redis_each_limit_counts_through_get_usage(request_of, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    limits = ((by_user, "1/m"),)
    first, second = (services.rate_limits_count(request_of, group=GROUP, limits=limits)[0] for _ in range(2))
    assert (first["count"], first["should_limit"]) == (1, False)
    assert (second["count"], second["should_limit"]) == (2, True)


def test_nothing_is_counted_when_rate_limits_are_off(request_of, settings):
    settings.RATELIMIT_ENABLE = False
    assert services.rate_limits_count(request_of, group=GROUP, limits=((by_user, "1/m"),)) == [None]


def test_the_time_left_is_at_least_a_second_at_a_windows_edge(request_of, monkeypatch):
    """django-ratelimit's window can end in the very second it is computed in (the clock on the
    window's edge): the count still answers a time left of at least one second, what Retry-After
    needs (CI met the edge and read 0), also when the clock ticks while Redis answers."""
    import itertools
    import time as time_module

    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache
    from django_ratelimit import core as ratelimit

    from tests.harness import missing

    if not isinstance(caches["default"], RedisCache):
        missing("redis", "the one-round-trip count needs the Redis cache (REDIS_URL)")
    limits = ((by_user, "3/m"), (by_address, "5/m"))
    monkeypatch.setattr(time_module, "time", lambda: 1_800_000_000.0)
    edge = ratelimit._get_window(by_user(GROUP, request_of), 60)
    monkeypatch.setattr(time_module, "time", lambda: edge + 0.3)  # the second the window ends in
    assert ratelimit._get_window(by_user(GROUP, request_of), 60) == edge
    usages = services.rate_limits_count(request_of, group=GROUP, limits=limits)
    assert all(usage["time_left"] >= 1 for usage in usages), usages
    ticks = itertools.count(edge - 0.8, 0.7)  # and a clock that moves on while the count runs
    monkeypatch.setattr(time_module, "time", lambda: next(ticks))
    usages = services.rate_limits_count(request_of, group=GROUP, limits=limits)
    assert all(usage["time_left"] >= 1 for usage in usages), usages
