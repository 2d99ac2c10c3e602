"""The gallery's cards, written out in Python instead of the template language.

Twenty-four cards make up most of a gallery page. Rendered as a template, each card took about
0.3 ms: some 70 variable lookups, filters and `{% if %}` nodes (the profile in bench/README.md).
Here a card is one format string, about 20 µs, and a whole page of cards is about 0.5 ms.
`_gallery_page.html` (the grid and its "load more") and `_gallery_card.html` (one card, which
running jobs poll) both use these tags, so the markup exists only here.

Every value is HTML-escaped (`html.escape`, which gives the same output as Django's `escape`):
the prompt is the person's own text. What a card shows is worked out in
`gallery_views._cards` (signed picture URL, links, age); this module only writes it out.
The star is `_favorite.html`'s compact markup. `test_the_cards_star_and_its_htmx_answer_are_the_same_markup`
checks that the two stay the same.
"""

from __future__ import annotations

import unicodedata
from html import escape

from django import template
from django.utils import timezone
from django.utils.safestring import mark_safe

from generation.models import FINAL_STATUSES, Kind, Status

register = template.Library()

_KIND_LABELS = {value: str(label) for value, label in Kind.choices}
_STATUS_LABELS = {value: str(label) for value, label in Status.choices}
_ALT_LENGTH = 120  # as `truncatechars:120`: the ellipsis counts
_STAR = (
    '<svg aria-hidden="true" width="20" height="20" viewBox="0 0 24 24"><path d="M12 3.5l2.6 5.4 5.9.8-4.3 4.1 1 '
    '5.8L12 16.9l-5.2 2.7 1-5.8-4.3-4.1 5.9-.8z"/></svg>'
)


@register.simple_tag(takes_context=True)
def gallery_cards(context, cards) -> str:
    """Every card of a page, in order."""
    csrf_token, here = _page_values(context)
    return mark_safe("".join([card_html(card, csrf_token=csrf_token, here=here) for card in cards]))  # noqa: S308 - escaped in card_html


@register.simple_tag(takes_context=True)
def gallery_card(context, card) -> str:
    """One card (the fragment a running card polls)."""
    csrf_token, here = _page_values(context)
    return mark_safe(card_html(card, csrf_token=csrf_token, here=here))  # noqa: S308 - escaped in card_html


def _page_values(context) -> tuple[str, str]:
    # `csrf_token` is lazy (it reads the request's token once); `here` is where the star's form returns.
    return escape(str(context.get("csrf_token", ""))), escape(context.get("here", ""))


def _alt(prompt: str) -> str:
    text = unicodedata.normalize("NFC", prompt)
    return text if len(text) <= _ALT_LENGTH else text[: _ALT_LENGTH - 1] + "…"


def card_html(card: dict, *, csrf_token: str, here: str) -> str:
    """One card. A finished job shows its picture; only the other states (queued, running,
    failed, canceled) carry a status badge, so the grid reads at a glance. Running cards poll
    their own fragment every 2 s until final."""
    g = card["generation"]
    uuid = str(g.uuid)
    status = escape(g.status)
    final = g.status in FINAL_STATUSES
    kind = escape(_KIND_LABELS.get(g.kind, g.kind))
    favorite_url = escape(card["favorite_url"])
    if final:
        li = f'<li class="gallery-card" id="card-{uuid}" data-status="{status}">'
    else:
        li = (
            f'<li class="gallery-card is-active" id="card-{uuid}" data-status="{status}" '
            f'hx-get="{escape(card["card_url"])}" hx-trigger="every 2s" hx-swap="outerHTML">'
        )
    if g.favorite:
        star = (
            '<input type="hidden" name="favorite" value="0"><input type="hidden" name="compact" value="1">'
            f'<input type="hidden" name="next" value="{here}"><button type="submit" class="favorite-button is-on" '
            f'aria-pressed="true" title="Remove from favourites">{_STAR}<span class="visually-hidden">Favourite</span>'
            "</button>"
        )
    else:
        star = (
            '<input type="hidden" name="favorite" value="1"><input type="hidden" name="compact" value="1">'
            f'<input type="hidden" name="next" value="{here}"><button type="submit" class="favorite-button" '
            f'aria-pressed="false" title="Add to favourites">{_STAR}'
            '<span class="visually-hidden">Add to favourites</span></button>'
        )
    if card["picture_url"]:
        picture = card["picture"]
        size = f' width="{int(picture.width)}" height="{int(picture.height)}"' if picture.width else ""
        thumb = (
            f'<img src="{escape(card["picture_url"])}" alt="{escape(_alt(g.prompt))}" loading="lazy" '
            f'decoding="async"{size}>'
        )
    else:
        if not final:
            inside = '<span class="gallery-working"></span>'
        elif g.status == Status.SUCCEEDED:
            inside = kind
        else:
            inside = "—"
        thumb = f'<span class="gallery-placeholder placeholder-{status}" aria-hidden="true">{inside}</span>'
    badge = (
        ""
        if g.status == Status.SUCCEEDED
        else f'<span class="status status-{status}">{escape(_STATUS_LABELS.get(g.status, g.status))}</span>'
    )
    if g.prompt:
        prompt = escape(g.prompt)
        title = f'<p class="gallery-prompt" title="{prompt}">{prompt}</p>'
    else:
        untitled = "3D model" if g.kind == Kind.IMAGE_TO_3D else "Untitled"
        title = f'<p class="gallery-prompt gallery-untitled">{untitled}</p>'
    cost = int(g.cost)
    when = timezone.localtime(g.queued_at).isoformat()
    return (
        f"{li}\n"
        f'  <label class="gallery-check" title="Select"><input type="checkbox" name="selected" value="{uuid}" '
        f'form="gallery-select" data-select><span class="visually-hidden">Select</span></label>\n'
        f'  <form method="post" action="{favorite_url}" class="favorite-form favorite-compact" '
        f'hx-post="{favorite_url}" hx-swap="outerHTML"><input type="hidden" name="csrfmiddlewaretoken" '
        f'value="{csrf_token}">{star}</form>\n'
        f'  <a class="gallery-thumb" href="{escape(card["detail_url"])}">\n'
        f"    {thumb}\n"
        f'    <span class="gallery-badges"><span class="gallery-kind">{kind}</span>{badge}</span>\n'
        "  </a>\n"
        '  <div class="gallery-meta">\n'
        f"    {title}\n"
        f'    <p class="gallery-facts">{escape(g.model.title)}</p>\n'
        f'    <p class="gallery-facts">{cost} credit{"" if cost == 1 else "s"} · '
        f'<time datetime="{when}">{escape(card["age"])}</time></p>\n'
        "  </div>\n"
        "</li>\n"
    )
