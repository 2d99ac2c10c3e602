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
from developers import guide, services
from developers.forms import WebhookEndpointForm
from developers.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent


def _url_or_none(name: str) -> str | None:
    try:
        return reverse(name)
    except NoReverseMatch:
        return None


# The problem+json `type`s a client can meet, in the order a developer looks for them; each row's
# id is the fragment of <SITE_URL>/developers/errors#<type>.
ERROR_TYPES = (
    ("unauthorized", 401, "No credential, or one that is unknown, expired or revoked."),
    ("insufficient_scope", 403, "The key or token lacks the scope this call needs (read or generate)."),
    ("account_paused", 403, "The account is paused on the privacy centre; nothing is done for it until it resumes."),
    ("account_in_debt", 403, "A payment was reversed and the account owes credits; new jobs wait until it is settled."),
    ("insufficient_credits", 402, "Not enough credits for this job. The detail says how many it needs."),
    ("invalid_input", 422, "A value can't be used (unknown model, a ratio it lacks, an image link we won't fetch)."),
    ("validation_error", 422, "The request body or a parameter does not match the schema; see errors."),
    ("idempotency_key_reused", 422, "This Idempotency-Key was used with a different request body."),
    ("idempotency_key_spent", 409, "The generation made with this Idempotency-Key was deleted; send a new key."),
    ("not_found", 404, "No such generation among yours (someone else's ids are not found either), or no such path."),
    ("conflict", 409, "The action does not fit the state, e.g. cancelling a finished generation."),
    ("method_not_allowed", 405, "That path does not take this HTTP method."),
    ("rate_limited", 429, "Too many requests: wait Retry-After seconds."),
    ("provider_error", 502, "The model provider failed. Credits are refunded; try again later."),
    ("storage_unavailable", 503, "Our storage did not answer. Nothing was charged; try again."),
    ("bad_request", 400, "The request could not be read (e.g. malformed JSON)."),
    ("request_too_large", 413, "The body is too large: send pictures by link (image_url, openaiFileIdRefs)."),
    ("server_error", 500, "Something failed on our side. Retry with the same Idempotency-Key."),
    ("forbidden", 403, "Not allowed for this account."),
)


def index(request: HttpRequest) -> HttpResponse:
    """The guide: GPT Action, MCP clients, curl, errors, limits, what the chat path keeps. Open to
    everyone (a developer reads it before signing up); the values on it are the site's own."""
    site = settings.SITE_URL
    seconds = float(settings.DEVELOPER_WEBHOOK_TIMEOUT)
    webhook_timeout = f"{seconds:g} second{'' if seconds == 1 else 's'}"  # a whole attempt's deadline
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
            "examples": guide.examples(site=site, mcp_url=f"{site}/mcp", webhook_timeout=webhook_timeout),
            "webhook_timeout": webhook_timeout,
            "error_types": ERROR_TYPES,
            "rate_per_key": _rate(getattr(settings, "API_RATE_PER_KEY", "")),
            "rate_per_user": _rate(getattr(settings, "API_RATE_PER_USER", "")),
            "submit_rate": _rate(settings.GENERATION_SUBMIT_RATE_PER_USER),
        },
    )


def _rate(rate: str) -> str:
    """django-ratelimit's "120/m" in words: "120 a minute"."""
    count, _, period = rate.partition("/")
    unit = {"s": "second", "m": "minute", "h": "hour", "d": "day"}.get(period[-1:] if period else "", "")
    if not count.isdigit() or not unit:
        return rate
    article = "an" if unit == "hour" else "a"
    return f"{count} {article} {unit}" if period in ("s", "m", "h", "d") else f"{count} per {period[:-1]} {unit}s"


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
            "send_rate": _rate(settings.DEVELOPER_WEBHOOK_TEST_RATE),
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
        return redirect("developers:webhook", uuid=endpoint.uuid)
    try:
        services.webhook_send_throttle(request=request)
    except ApplicationError as exc:
        messages.error(request, str(exc))
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
        services.webhook_send_throttle(request=request)
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
