"""A Redis cache that falls back to a per-process memory cache while Redis is unreachable.

The cache holds nothing that must survive: its main users are allauth's rate limiter (sign-in,
password reset, sign-up) and our submit limits. With Django's plain `RedisCache`, a Redis outage
turns every one of those pages into a 500, so nobody can sign in. Here a connection error or
timeout is logged and, for `RETRY_AFTER` seconds, every call goes to a local memory cache of this
process instead; then Redis is tried again.

So the limits keep counting during an outage, per process: with N web workers an attacker gets at
most N times the allowance, not an unlimited one, and staff (who sign in through the same page)
stay protected. `/healthz` still reports the outage: it asks `degraded`.

What that costs, for the duration of the outage only: counts are per process and start from zero,
and `cache.add` only excludes callers in the same process, so code must not use the cache as a
lock for correctness (Atelier's money and job state use database locks instead).

Only connection-level failures fall back; a Redis error that means a bug (a wrong type, a bad
command) still raises.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

OUTAGE = (RedisConnectionError, RedisTimeoutError)


class FailOpenRedisCache(RedisCache):
    # Seconds to skip Redis after a failure, so a down server costs one connect attempt per
    # window instead of several per request (each one up to the socket timeout).
    RETRY_AFTER = 5.0

    def __init__(self, server: str, params: dict[str, Any]):
        super().__init__(server, params)
        self._down_until = 0.0
        self._local = LocMemCache(f"fail-open-{id(self)}", {"TIMEOUT": params.get("TIMEOUT", 300)})

    @property
    def degraded(self) -> bool:
        """True while calls go to the local fallback (Redis failed less than RETRY_AFTER ago)."""
        return time.monotonic() < self._down_until

    def _call(self, method: str, *args: Any) -> Any:
        if self.degraded:
            return getattr(self._local, method)(*args)
        try:
            return getattr(super(), method)(*args)
        except OUTAGE as exc:
            self._down_until = time.monotonic() + self.RETRY_AFTER
            logger.error(
                "cache: Redis unreachable (%s: %s); counting in this process's memory for %.0fs",
                type(exc).__name__,
                exc,
                self.RETRY_AFTER,
            )
            return getattr(self._local, method)(*args)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call("add", key, value, timeout, version)

    def get(self, key, default=None, version=None):
        return self._call("get", key, default, version)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call("set", key, value, timeout, version)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call("touch", key, timeout, version)

    def delete(self, key, version=None):
        return self._call("delete", key, version)

    def get_many(self, keys, version=None):
        return self._call("get_many", keys, version)

    def has_key(self, key, version=None):
        return self._call("has_key", key, version)

    def incr(self, key, delta=1, version=None):
        return self._call("incr", key, delta, version)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call("set_many", data, timeout, version)

    def delete_many(self, keys, version=None):
        return self._call("delete_many", keys, version)

    def clear(self):
        self._local.clear()
        return self._call("clear")
