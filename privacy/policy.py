"""The current privacy policy version, its rendering, and the re-acceptance notice.

Current = the newest published PolicyVersion whose effective date has come. Every page asks for
it (the notice, `User.has_accepted_terms`), so it is cached for a short while — never past the
moment a scheduled version takes effect — and the cache is dropped when staff publish one.

Only a material change asks everyone to accept again: an acceptance of any version in force since
the newest material one (or since the first version) still counts (`policy_version_accepted`).
A non-material version (a clarification, a new section about a new feature) is published,
dated and shown in the history without stopping anyone.
"""

from __future__ import annotations

import re
import time
from xml.etree.ElementTree import Element

import markdown
from django.conf import settings
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from privacy.models import PolicyVersion

CACHE_KEY = "privacy:policy:state"
CACHE_SECONDS = 60


def _published():
    return PolicyVersion.objects.filter(published_at__isnull=False)


# This process's copy of the state, for at most LOCAL_SECONDS: every submit and signed-in page asks,
# and a cache round trip costs ~0.2 ms. Publishing forgets it here at once; other processes see a
# new version within a second (the shared cache entry is dropped on publish too).
LOCAL_SECONDS = 1.0
_NOTHING_KEPT = (float("-inf"), None)
_local: tuple = _NOTHING_KEPT  # (good until (monotonic), state), replaced whole: threads read it once


def _state() -> dict:
    global _local
    good_until, state = _local
    if time.monotonic() < good_until:
        return state
    state = _shared_state()
    _local = (time.monotonic() + LOCAL_SECONDS, state)
    return state


def _shared_state() -> dict:
    """{"current": [pk, version] or [], "accepted": [versions]} from ONE query over the published
    versions (a handful of rows), cached for CACHE_SECONDS but never past the moment the next
    scheduled version takes effect. Every signed-in page needs both (the notice and
    `User.has_accepted_terms`)."""
    cached = cache.get(CACHE_KEY)
    if cached is not None:
        return cached
    now = timezone.now()
    rows = list(
        _published()
        .order_by("-effective_at", "-published_at", "-id")
        .values_list("pk", "version", "material", "effective_at")
    )
    in_force = [row for row in rows if row[3] <= now]
    accepted: list[str] = []
    for _pk, version, material, _effective in in_force:  # newest first, down to the newest material one
        accepted.append(version)
        if material:
            break
    state = {
        "current": [in_force[0][0], in_force[0][1]] if in_force else [],
        "accepted": accepted or [settings.PRIVACY_POLICY_VERSION],
    }
    upcoming = [row[3] for row in rows if row[3] > now]
    timeout = CACHE_SECONDS
    if upcoming:
        timeout = max(1, min(CACHE_SECONDS, int((min(upcoming) - now).total_seconds()) + 1))
    cache.set(CACHE_KEY, state, timeout)
    return state


def current_policy_ref() -> tuple[int, str] | None:
    """(pk, version) of the current version, or None when nothing is published yet."""
    current = _state()["current"]
    return tuple(current) if current else None


def current_policy_forget() -> None:
    """Called when a version is published: the next request looks again."""
    global _local
    _local = _NOTHING_KEPT
    cache.delete(CACHE_KEY)


def accepted_policy_versions() -> list[str]:
    """The versions whose acceptance still counts: every published version in force from the newest
    material one on (all of them while none was material)."""
    return _state()["accepted"]


def policy_version_accepted(version: str) -> bool:
    """Does an acceptance of `version` still count (see the module's docstring)?"""
    return bool(version) and version in accepted_policy_versions()


def current_policy_version() -> str:
    """The version string people must have accepted (registered with accounts at start-up)."""
    ref = current_policy_ref()
    return ref[1] if ref else settings.PRIVACY_POLICY_VERSION


def current_policy() -> PolicyVersion | None:
    ref = current_policy_ref()
    if ref is None:
        return None
    return PolicyVersion.objects.filter(pk=ref[0]).first()


# --- rendering ---------------------------------------------------------------------------------

_SAFE_LINK = re.compile(r"^(https?:|mailto:|/|#)", re.IGNORECASE)


class _SafeLinks(markdown.treeprocessors.Treeprocessor):
    """Links only to http(s), mailto, our own paths and anchors; anything else (javascript:,
    data:) loses its href. Images are not part of a policy: they become their alt text."""

    def run(self, root: Element) -> None:
        for parent in root.iter():
            for child in list(parent):
                if child.tag == "a" and not _SAFE_LINK.match(child.get("href", "")):
                    child.attrib.pop("href", None)
                elif child.tag == "img":
                    child.tag, child.text = "span", child.get("alt", "")
                    child.attrib.clear()


class _SafeMarkdown(markdown.extensions.Extension):
    def extendMarkdown(self, md: markdown.Markdown) -> None:  # noqa: N802 - Markdown's API name
        # Raw HTML written by staff is shown as text, never passed through.
        md.preprocessors.deregister("html_block")
        md.inlinePatterns.deregister("html")
        md.treeprocessors.register(_SafeLinks(md), "atelier_safe_links", 0)


def render_markdown(text: str) -> SafeString:
    """Staff-written Markdown as HTML: headings, lists, tables, emphasis and safe links; raw HTML
    escaped (the policy is data typed in the admin, and CSP would refuse scripts anyway)."""
    html = markdown.markdown(text, extensions=["tables", "sane_lists", "toc", _SafeMarkdown()], output_format="html")
    return mark_safe(html)  # noqa: S308 - raw HTML disabled above, links filtered


# --- the notice --------------------------------------------------------------------------------


def context(request) -> dict:
    """`policy_notice` for people who accepted an older version than the current one (base.html
    shows it on every page but the accept page itself), and the periods and contact address the
    pages mention."""
    data: dict = {
        name: getattr(settings, name)
        for name in ("PRIVACY_RETENTION_INPUTS_DAYS", "PRIVACY_RETENTION_IP_DAYS", "PRIVACY_CONTACT_EMAIL")
    }
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.has_passed_gate or user.has_accepted_terms:
        return data
    accept_url = reverse("privacy:policy_accept")
    if request.path == accept_url:
        return data
    policy = current_policy()
    if policy is not None:
        data["policy_notice"] = {"policy": policy, "accept_url": accept_url}
    return data
