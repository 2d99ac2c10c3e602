from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def policy(request: HttpRequest) -> HttpResponse:
    return render(request, "privacy/policy.html")
