"""/developers: the guide page and completion webhooks (the keys pages live in
accounts.views_developers)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_POST

from config.errors import ApplicationError, form_error
from developers import services
from developers.forms import WebhookEndpointForm
from developers.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent


def _url_or_none(name: str) -> str | None:
    try:
        return reverse(name)
    except NoReverseMatch:
        return None


def index(request: HttpRequest) -> HttpResponse:
    """The guide: GPT Action, MCP clients, curl, errors, limits, what the chat path keeps. Open to
    everyone (a developer reads it before signing up); the values on it are the site's own."""
    site = settings.SITE_URL
    return render(
        request,
        "developers/index.html",
        {
            "site_url": site,
            "schema_url": f"{site}/api/v1/openapi.json",
            "authorize_url": f"{site}/oauth/authorize/",
            "token_url": f"{site}/oauth/token/",
            "policy_url": site + reverse("privacy:policy"),
            "mcp_url": f"{site}/mcp",
            "api_base": f"{site}/api/v1",
            "docs_url": "/api/v1/docs",
            "connections_url": _url_or_none("oauth:connections"),
            "retention_days": settings.ASSISTANT_PROMPT_RETENTION_DAYS,
            "retry_hours": round(sum(settings.DEVELOPER_WEBHOOK_RETRY_SCHEDULE) / 3600),
            "retry_count": len(settings.DEVELOPER_WEBHOOK_RETRY_SCHEDULE),
            "events": WebhookEvent.values,
        },
    )


def _endpoint(request: HttpRequest, uuid) -> WebhookEndpoint:
    return get_object_or_404(WebhookEndpoint, uuid=uuid, owner=request.user)  # someone else's: 404


@login_required
def webhooks(request: HttpRequest) -> HttpResponse:
    """The person's endpoints and the form to add one (the URL goes through the SSRF guard)."""
    if request.method == "POST":
        form = WebhookEndpointForm(request.POST)
        if form.is_valid():
            try:
                endpoint = services.webhook_endpoint_create(
                    user=request.user,
                    url=form.cleaned_data["url"],
                    description=form.cleaned_data["description"],
                    events=form.cleaned_data["events"],
                )
            except ApplicationError as exc:
                form_error(form, exc)
            else:
                messages.success(request, "Endpoint added. Copy its signing secret below to verify deliveries.")
                return redirect("developers:webhook", uuid=endpoint.uuid)
    else:
        form = WebhookEndpointForm()
    endpoints = WebhookEndpoint.objects.filter(owner=request.user)
    return render(
        request,
        "developers/webhooks.html",
        {
            "form": form,
            "endpoints": endpoints,
            "limit": settings.DEVELOPER_WEBHOOK_MAX_ENDPOINTS,
            "at_limit": len(endpoints) >= settings.DEVELOPER_WEBHOOK_MAX_ENDPOINTS,
        },
    )


@login_required
def webhook(request: HttpRequest, uuid) -> HttpResponse:
    """One endpoint: its secret, settings, and the log of its last deliveries."""
    endpoint = _endpoint(request, uuid)
    if request.method == "POST":
        form = WebhookEndpointForm(request.POST)
        if form.is_valid():
            try:
                services.webhook_endpoint_update(
                    endpoint=endpoint,
                    url=form.cleaned_data["url"],
                    description=form.cleaned_data["description"],
                    events=form.cleaned_data["events"],
                )
            except ApplicationError as exc:
                form_error(form, exc)
            else:
                messages.success(request, "Endpoint saved.")
                return redirect("developers:webhook", uuid=endpoint.uuid)
    else:
        form = WebhookEndpointForm(
            initial={"url": endpoint.url, "description": endpoint.description, "events": endpoint.events}
        )
    response = render(
        request,
        "developers/webhook.html",
        {
            "endpoint": endpoint,
            "form": form,
            "deliveries": services.webhook_deliveries_for(endpoint=endpoint),
            "log_size": services.LOG_SIZE,
            "retry_count": len(settings.DEVELOPER_WEBHOOK_RETRY_SCHEDULE),
        },
    )
    response["Cache-Control"] = "no-store"  # the page shows the signing secret
    return response


@login_required
@require_POST
def webhook_roll(request: HttpRequest, uuid) -> HttpResponse:
    endpoint = _endpoint(request, uuid)
    services.webhook_endpoint_secret_roll(endpoint=endpoint)
    messages.success(request, "New signing secret made. The old one no longer verifies: update your receiver.")
    return redirect("developers:webhook", uuid=endpoint.uuid)


@login_required
@require_POST
def webhook_toggle(request: HttpRequest, uuid) -> HttpResponse:
    endpoint = _endpoint(request, uuid)
    enable = request.POST.get("enabled") == "1"
    if services.webhook_endpoint_enable(endpoint=endpoint, enabled=enable):
        messages.success(request, "Endpoint enabled." if enable else "Endpoint disabled: nothing is sent to it.")
    return redirect("developers:webhook", uuid=endpoint.uuid)


@login_required
@require_POST
def webhook_delete(request: HttpRequest, uuid) -> HttpResponse:
    endpoint = _endpoint(request, uuid)
    services.webhook_endpoint_delete(endpoint=endpoint)
    messages.success(request, f"Endpoint {endpoint.url} deleted.")
    return redirect("developers:webhooks")


@login_required
@require_POST
def webhook_test(request: HttpRequest, uuid) -> HttpResponse:
    endpoint = _endpoint(request, uuid)
    if not endpoint.enabled:
        messages.error(request, "Enable the endpoint first.")
    else:
        delivery = services.webhook_test_send(endpoint=endpoint)
        delivery.refresh_from_db()
        if delivery.status == DeliveryStatus.SUCCEEDED:
            messages.success(request, f"Test event delivered (HTTP {delivery.last_status_code}).")
        elif delivery.status == DeliveryStatus.FAILED:
            messages.error(request, "The test event was not accepted. See the log below.")
        else:
            messages.success(request, "Test event queued. Its result appears in the log below.")
    return redirect("developers:webhook", uuid=endpoint.uuid)


@login_required
@require_POST
def delivery_resend(request: HttpRequest, uuid, pk: int) -> HttpResponse:
    endpoint = _endpoint(request, uuid)
    delivery = get_object_or_404(WebhookDelivery, pk=pk, endpoint=endpoint)
    try:
        services.webhook_delivery_resend(delivery=delivery)
    except ApplicationError as exc:
        messages.error(request, str(exc))
    else:
        delivery.refresh_from_db()
        if delivery.status == DeliveryStatus.SUCCEEDED:
            messages.success(request, f"Delivered (HTTP {delivery.last_status_code}).")
        else:
            messages.success(request, "Sent again. The result is in the log.")
    return redirect(reverse("developers:webhook", kwargs={"uuid": endpoint.uuid}) + f"#delivery-{delivery.pk}")
