from __future__ import annotations

import uuid

from ninja import Router, Schema
from ninja.security import django_auth

router = Router(tags=["account"])


class MeOut(Schema):
    id: uuid.UUID
    email: str
    display_name: str


@router.get("/me", response=MeOut, auth=django_auth, summary="The signed-in account")
def me(request):
    user = request.auth
    return MeOut(id=user.public_id, email=user.email, display_name=user.display_name)
