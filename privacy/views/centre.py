"""The privacy centre: what Atelier holds about the person, the actions, the activity log."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from privacy import selectors
from privacy.views import choices, erasure, export, policy


@login_required
def centre(request: HttpRequest) -> HttpResponse:
    user = request.user
    context = {
        "holdings": selectors.holdings_summary(user=user),
        "activity": selectors.activity_recent(user=user),
    }
    for section in (export, erasure, choices, policy):
        context.update(section.section_context(user))
    return render(request, "privacy/centre.html", context)
