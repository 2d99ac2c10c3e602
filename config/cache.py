"""A Redis cache that fails open while Redis is unreachable.

The cache holds nothing that must survive: its main user is allauth's rate limiter (sign-in,
password reset, sign-up). With Django's plain `RedisCache`, a Redis outage turns every one of those
pages into a 500, so nobody can sign in. Here a connection error or timeout is logged once and,
for `RETRY_AFTER` seconds, the cache behaves as an empty cache that stores nothing: reads miss,
writes are dropped, `add` reports success. Then Redis is tried again.

Why fail open rather than a per-process fallback: the limiter keeps counting as soon as Redis is
back, and a local copy would also answer `/healthz`'s write-then-read check, hiding the outage.
Here `/healthz` still reports the cache as failing (what it writes cannot be read back).

What that costs, for the duration of the outage only: no rate limits on sign-in and password
reset, and `cache.add` no longer excludes a second caller, so code must not use the cache as a
lock for correctness (Atelier's money and job state use database locks instead).

Only connection-level failures are swallowed; a Redis error that means a bug (a wrong type, a
bad command) still raises.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
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

    def _call(self, method: str, fallback: Any, *args: Any, **kwargs: Any) -> Any:
        if time.monotonic() < self._down_until:
            return fallback
        try:
            return getattr(super(), method)(*args, **kwargs)
        except OUTAGE as exc:
            self._down_until = time.monotonic() + self.RETRY_AFTER
            logger.error(
                "cache: Redis unreachable (%s: %s); failing open (no rate limits) for %.0fs",
                type(exc).__name__,
                exc,
                self.RETRY_AFTER,
            )
            return fallback

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        # True: a caller waiting for a lock (allauth's limiter) goes ahead instead of waiting it out.
        return self._call("add", True, key, value, timeout, version)

    def get(self, key, default=None, version=None):
        return self._call("get", default, key, default, version)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call("set", None, key, value, timeout, version)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call("touch", False, key, timeout, version)

    def delete(self, key, version=None):
        return self._call("delete", False, key, version)

    def get_many(self, keys, version=None):
        return self._call("get_many", {}, keys, version)

    def has_key(self, key, version=None):
        return self._call("has_key", False, key, version)

    def incr(self, key, delta=1, version=None):
        # As if the counter had just been created: a limiter counting with incr lets the call through.
        return self._call("incr", delta, key, delta, version)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call("set_many", list(data), data, timeout, version)

    def delete_many(self, keys, version=None):
        return self._call("delete_many", None, keys, version)

    def clear(self):
        return self._call("clear", None)
