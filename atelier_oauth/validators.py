"""DOT's request validator with Atelier's one addition: a token may be bound (RFC 8707) only to
one of our own resources, the API or the MCP endpoint."""

from __future__ import annotations

from django.conf import settings
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.oauth2.rfc6749 import errors

from atelier_oauth import services


def invalid_target(resource: str, request=None) -> errors.CustomOAuth2Error:
    allowed = " or ".join(services.resources())
    return errors.CustomOAuth2Error(
        error="invalid_target",
        description=f"The resource '{resource}' is not served here; use {allowed}.",
        request=request,
    )


class AtelierOAuth2Validator(OAuth2Validator):
    def is_pkce_required(self, client_id, request):
        # PKCE for every client. The one way out is for the operator to name a confidential client in
        # OAUTH_PKCE_EXEMPT_CLIENT_IDS, for a GPT Action whose ChatGPT does not send a code_challenge
        # (reported of GPT Actions in 2023); it still proves itself with its secret at the token endpoint.
        if client_id in settings.OAUTH_PKCE_EXEMPT_CLIENT_IDS:
            return False
        return super().is_pkce_required(client_id, request)

    def _validate_resource_uris(self, request, resources):
        # DOT checks the form (absolute URI, no fragment); we also check that it is ours. Called
        # for the token request's `resource` and for values inherited from the code or refresh token.
        super()._validate_resource_uris(request, resources)
        for resource in resources:
            if not services.resource_is_ours(resource):
                raise invalid_target(resource, request)
