"""One base for the errors our services raise on purpose.

An `ApplicationError` carries what every door needs to answer it: an HTTP `status`, a stable
`type` slug (the API's problem+json `type` is `<SITE_URL>/developers/errors#<type>`), the form
`field` it belongs beside when there is one, and `str(exc)`, a sentence for the person. The API's
exception handler (config/api.py) and the HTML forms (`form_error`) both read these, so a refusal
reads the same on the create page, in JSON and in a chat.
"""

from __future__ import annotations


class ApplicationError(Exception):
    status: int = 400
    type: str = "invalid_request"
    title: str = "The request cannot be done"
    field: str | None = None
    retry_after: int | None = None

    def __init__(self, message: str = "", *, field: str | None = None):
        super().__init__(message or self.title)
        if field is not None:
            self.field = field

    @property
    def message(self) -> str:
        return str(self)


def form_error(form, exc: ApplicationError) -> None:
    """Put a refused action's sentence on a Django form: beside its field when the form has that
    field, else at the top (non-field errors)."""
    field = exc.field if exc.field and exc.field in form.fields else None
    form.add_error(field, str(exc))
