"""POST /api/v1/auth/token: a vendor user's password for an expiring personal token."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_noop
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from okada.core import login_guard
from okada.core.api import ratelimit
from okada.core.api.serializers import StrictSerializer, UtcDateTimeField, validated
from okada.core.api.views import ApiView
from okada.core.errors import NotAuthenticated, Throttled
from okada.core.texts import Text

from . import services


class TokenIn(StrictSerializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=256, trim_whitespace=False)
    vendor = serializers.SlugField(
        max_length=100, required=False, help_text="The vendor's slug, for users of several vendors."
    )


class TokenOut(serializers.Serializer[Any]):
    token = serializers.CharField(help_text="Send it as `Authorization: Bearer <token>`; shown once.")
    expires_at = UtcDateTimeField()


class TokenApi(ApiView):
    """Brute force: okada.core.login_guard (shared with the admin's login form); past the limit
    every attempt, right or wrong, is a 429 until the window ends."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    idempotent = False  # the answer holds a secret: never stored for replay

    @extend_schema(
        operation_id="auth_token",
        summary="Get a personal token (vendor users)",
        description="A vendor user's username and password give a bearer token that expires "
        "(`OKADA_API_TOKEN_HOURS`, 12 h by default). Repeated failures for a username or from an "
        "address are refused with 429 until the window ends, right password or not. Not stored "
        "under an Idempotency-Key (the answer holds a secret).",
        request=TokenIn,
        responses={201: TokenOut},
        examples=[
            OpenApiExample("login", value={"username": "awa", "password": "••••••••"}, request_only=True),
            OpenApiExample(
                "token",
                value={"token": "okt_3f9a1c2b7d4e_Qm9...", "expires_at": "2026-11-22T21:30:00.000000Z"},
                response_only=True,
                status_codes=["201"],
            ),
        ],
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        data = validated(TokenIn, request.data)
        try:
            attempt = login_guard.begin(data["username"], ratelimit.client_ip(request))
        except login_guard.LockedOut as locked:
            raise Throttled(
                Text(
                    gettext_noop("Too many failed logins: try again in %(s)d seconds."), s=locked.retry_after
                ),
                retry_after=locked.retry_after,
            ) from None
        try:
            issued = services.personal_token_issue(
                username=data["username"],
                password=data["password"],
                vendor_slug=data.get("vendor", ""),
            )
        except NotAuthenticated:
            raise  # a failure: the counts stay
        except BaseException:
            attempt.not_a_failure()  # e.g. "say which vendor": the password was right
            raise
        attempt.succeeded()
        body = TokenOut({"token": issued.secret, "expires_at": issued.token.expires_at}).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})
