from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from billing import selectors


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    page = Paginator(selectors.ledger_for(user=request.user), 20).get_page(request.GET.get("page"))
    return render(request, "billing/overview.html", {"balance": selectors.balance_of(user=request.user), "page": page})
