"""How many requests one person may hold open while waiting for a job (`Prefer: wait` on the API,
the wait of an MCP generation tool or of get_generation).

A held request keeps a web thread for up to 40 s. Without a bound one person could hold every
thread of the site with a running job and a few dozen requests a minute (the rate limits count
calls, not time held). Past API_WAITS_PER_USER held at once, a call answers at once with the job
as it stands (the API's 202 + Location, MCP's "still running, poll with get_generation") instead
of waiting. The count lives in the shared cache; a count left behind by a killed process expires
HOLD_TTL seconds after the person's last wait.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

from django.conf import settings
from django.core.cache import cache

HOLD_TTL = 90  # longer than any wait (40 s) and the time to answer


def _key(user) -> str:
    return f"api:waits:{user.pk}"


@contextmanager
def wait_slot(user) -> Iterator[bool]:
    """Yields True when this request may wait (a slot was free), False when it must answer now."""
    key = _key(user)
    cache.add(key, 0, HOLD_TTL)
    try:
        held = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 0, HOLD_TTL)
        held = cache.incr(key)
    cache.touch(key, HOLD_TTL)
    try:
        yield held <= settings.API_WAITS_PER_USER
    finally:
        with suppress(ValueError):
            cache.decr(key)
