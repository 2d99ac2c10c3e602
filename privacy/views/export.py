"""Privacy centre: export ("Download my data") — ask, watch progress, download."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from privacy.models import DataExport, ExportStatus
from privacy.services import export as service

ACTIVE = (ExportStatus.QUEUED, ExportStatus.RUNNING)


def section_context(user) -> dict:
    """What the privacy centre page needs for this section: the latest export and whether a new
    one may be asked for now."""
    return _status_context(user, DataExport.objects.filter(user=user).order_by("-requested_at", "-id").first())


def _status_context(user, export: DataExport | None) -> dict:
    return {
        "export": export,
        "export_active": export is not None and export.status in ACTIVE,
        # Past its expiry but not yet swept by beat: already shown (and refused) as expired.
        "export_expired": export is not None
        and (
            export.status == ExportStatus.EXPIRED
            or (export.status == ExportStatus.READY and export.expires_at and export.expires_at <= timezone.now())
        ),
        "export_next_at": service.export_next_allowed_at(user=user),
        "export_ttl_days": settings.PRIVACY_EXPORT_TTL_DAYS,
        "export_interval_hours": settings.PRIVACY_EXPORT_MIN_INTERVAL_HOURS,
    }


@login_required
@require_POST
def request_export(request: HttpRequest) -> HttpResponse:
    try:
        service.export_request(user=request.user, request=request)
    except service.ExportTooSoon as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "We are preparing your export. We will email you when it is ready.")
    return redirect("privacy:centre")


@login_required
@require_GET
def status_fragment(request: HttpRequest, uuid) -> HttpResponse:
    """The export's status block; htmx polls it while the export is queued or being prepared."""
    export = get_object_or_404(DataExport, uuid=uuid, user=request.user)
    return render(request, "privacy/_export_status.html", _status_context(request.user, export))


@login_required
@require_GET
def download(request: HttpRequest, uuid) -> HttpResponse:
    """The link in the email: owner-only (anyone else gets 404); redirects to a short-lived signed
    URL of the ZIP, or says why not (expired: 410; not ready yet: back to the privacy centre)."""
    export = get_object_or_404(DataExport.objects.select_related("user"), uuid=uuid, user=request.user)
    try:
        url = service.export_open(export=export, request=request)
    except service.ExportExpired as exc:
        context = {"export": export, "message": str(exc), "ttl_days": settings.PRIVACY_EXPORT_TTL_DAYS}
        return render(request, "privacy/export_unavailable.html", context, status=410)
    except service.ExportNotReady as exc:
        messages.info(request, str(exc))
        return redirect("privacy:centre")
    response = redirect(url)
    response["Cache-Control"] = "no-store"
    return response


urlpatterns = [
    path("exports/", request_export, name="export_request"),
    path("exports/<uuid:uuid>/", download, name="export_download"),
    path("exports/<uuid:uuid>/status/", status_fragment, name="export_status"),
]
