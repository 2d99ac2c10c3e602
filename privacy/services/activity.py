"""The activity log: one row per privacy-relevant event, written by the service that caused it."""

from __future__ import annotations

import re

from django.http import HttpRequest

from config.net import client_ip
from privacy.models import ActivityEvent, ActivityKind

_BROWSERS = [  # order matters: Edge and Opera also say "Chrome", Chrome also says "Safari"
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Safari/", "Safari"),
]
_SYSTEMS = [
    (re.compile(r"iPhone|iPad|iPod"), "iOS"),
    (re.compile(r"Android"), "Android"),
    (re.compile(r"Windows"), "Windows"),
    (re.compile(r"Mac OS X|Macintosh"), "macOS"),
    (re.compile(r"CrOS"), "ChromeOS"),
    (re.compile(r"Linux"), "Linux"),
]


def device_label(user_agent: str) -> str:
    """A coarse "Browser on System" from a User-Agent header: enough for a person to recognise
    their own sign-ins, too little to fingerprint them."""
    if not user_agent:
        return ""
    browser = next((name for token, name in _BROWSERS if token in user_agent), "")
    system = next((name for pattern, name in _SYSTEMS if pattern.search(user_agent)), "")
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or "Other device"


def activity_record(
    *,
    user,
    kind: ActivityKind | str,
    request: HttpRequest | None = None,
    actor=None,
    **detail,
) -> ActivityEvent:
    """Record one event in `user`'s activity log. `request` adds the IP address (dropped after
    the retention period) and a coarse device; `actor` is the staff member for staff changes.
    `detail` holds short facts (counts, kinds, key prefixes) and never prompt text."""
    ip = device = None
    if request is not None:
        ip = client_ip(request) or None
        device = device_label(request.headers.get("User-Agent", ""))
    return ActivityEvent.objects.create(user=user, kind=kind, actor=actor, ip=ip, device=device or "", detail=detail)
