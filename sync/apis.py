"""Offline sync endpoints of `/api/v1/` (DESIGN.md section 5): register a device, pull, push.

Thin views: validate the shape, call `sync.services` / `sync.pull` / `sync.push`, answer. A vendor
credential with the `sync` scope reaches only its own vendor's devices (another vendor's device
is a 404); a revoked device is a 403 `device_revoked`. Answers are gzip-compressed for clients
that accept it (okada.core.api.middleware.JsonGZipMiddleware).

Pulls and pushes skip the API's Idempotency-Key store: the protocol is its own (a pull repeated
with the same cursors, a push retried with the same mutation ids), and a stored pull page would
be a copy of up to a megabyte per request.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpResponse
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.fields import empty
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from catalog.services import VendorSuspended
from okada.core.actors import Actor
from okada.core.api.problems import problem_response
from okada.core.api.schema import problem_response as problem_doc
from okada.core.api.serializers import (
    StrictSerializer,
    VisibleCharField,
    refuse_loosely_typed,
    utc,
    validated,
)
from okada.core.api.views import ApiView

from . import feed, services
from .models import Device
from .pull import pull
from .push import MAX_MUTATION_ID, MUTATIONS, TryAgain, push

VENDOR = Actor.VENDOR
TAGS = ["sync"]
SUSPENDED = problem_doc(
    VendorSuspended,
    "the credential's vendor is suspended: it registers no new device and renames none",
)

# --- Devices ------------------------------------------------------------------------------------


class DeviceIn(StrictSerializer):
    read_only_names = ("created_at", "updated_at", "last_mutation_id")
    device_id = serializers.UUIDField(help_text="Chosen by the device, kept for its lifetime.")
    name = VisibleCharField(max_length=100, help_text="Shown to staff (e.g. 'Caisse 1').")


class DeviceOut(serializers.Serializer[Any]):
    device_id = serializers.UUIDField()
    name = serializers.CharField()
    last_mutation_id = serializers.IntegerField()
    created_at = serializers.CharField()


def device_json(device: Device) -> dict[str, Any]:
    return {
        "device_id": str(device.pk),
        "name": device.name,
        "last_mutation_id": device.last_mutation_id,
        "created_at": utc(device.created_at),
    }


class DeviceRegisterApi(ApiView):
    required_scopes = {"POST": "sync"}
    allowed_roles = {VENDOR}

    @extend_schema(
        operation_id="sync_devices_register",
        summary="Register a device for offline sync",
        description="Idempotent: registering the same device again renames it (200). A device id "
        "registered to another vendor (live or revoked) is a 409 `device_taken`, naming nothing of it: "
        "choose a new id (pulls and pushes naming it are 404); a revoked device of yours a 403 "
        "`device_revoked`; "
        "a new device or a new name of a suspended vendor a 403 `vendor_suspended` (its devices "
        "already registered, sent again unchanged, answer 200).",
        request=DeviceIn,
        responses={201: DeviceOut, 200: DeviceOut, 403: SUSPENDED},
        examples=[
            OpenApiExample(
                "till",
                value={"device_id": "0192f6d2-8b1c-7c3e-9a51-3f2b9c1d4e5f", "name": "Caisse 1"},
                request_only=True,
            )
        ],
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        data = validated(DeviceIn, request.data)
        device, created = services.device_register(
            actor=self.actor, device_id=data["device_id"], name=data["name"]
        )
        return Response(
            device_json(device), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


# --- Pull ---------------------------------------------------------------------------------------


class CursorsIn(StrictSerializer):
    """{"0": cursor|null, "1": ..., "2": ...}: keys that are not Python names, hence get_fields."""

    read_only_names = ()

    def get_fields(self) -> dict[str, serializers.Field]:
        return {
            str(p): serializers.CharField(required=False, allow_null=True, max_length=2000)
            for p in feed.PRIORITIES
        }


class PullIn(StrictSerializer):
    device_id = serializers.UUIDField()
    cursors = CursorsIn(
        required=False, allow_null=True, help_text="One opaque cursor per priority; null to start."
    )
    limit = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=settings.OKADA_SYNC_PAGE_MAX_ROWS,
        help_text="Rows per page (default OKADA_SYNC_PAGE_ROWS).",
    )


class TableChangesOut(serializers.Serializer[Any]):
    upserted = serializers.ListField(child=serializers.DictField(), help_text="Rows as they are now.")
    deleted = serializers.ListField(child=serializers.UUIDField(), help_text="Ids to drop.")


class PullOut(serializers.Serializer[Any]):
    changes = serializers.DictField(
        child=TableChangesOut(),
        help_text="Per table (" + ", ".join(e.name for e in feed.ENTITIES) + "); only tables with changes.",
    )
    cursors = serializers.DictField(child=serializers.CharField(allow_null=True))
    has_more = serializers.DictField(child=serializers.BooleanField())
    last_mutation_id = serializers.IntegerField()
    reset = serializers.BooleanField(help_text="True: drop the local copy and pull again with null cursors.")


class PullApi(ApiView):
    # A pull sends products, stock and orders: the scopes that read them over REST too.
    required_scopes = {"POST": ("sync", "products:read", "orders:read")}
    allowed_roles = {VENDOR}
    idempotent = False

    @extend_schema(
        operation_id="sync_pull",
        summary="Pull a page of changes",
        description="Priority 0 (orders, order items, stock) first, then 1 (products, categories, "
        "zones), then 2 (the shop, payments, conflicts), up to `limit` rows and a byte cap. Never "
        "misses a change: repeat an interrupted pull with the same cursors. `reset: true` after a "
        "restore from backup or for a cursor older than the retained feed.",
        request=PullIn,
        responses={200: PullOut},
        examples=[
            OpenApiExample(
                "first pull",
                value={
                    "device_id": "0192f6d2-8b1c-7c3e-9a51-3f2b9c1d4e5f",
                    "cursors": {"0": None, "1": None, "2": None},
                    "limit": 500,
                },
                request_only=True,
            )
        ],
        tags=TAGS,
    )
    def post(self, request: Request) -> HttpResponse:
        data = validated(PullIn, request.data)
        page = pull(
            actor=self.actor,
            device_id=data["device_id"],
            cursors=data.get("cursors") or {},
            limit=data.get("limit"),
        )
        # The rows are JSON already (built by PostgreSQL): joined, not parsed and dumped again.
        return HttpResponse(page.as_json(), content_type="application/json")


# --- Push ---------------------------------------------------------------------------------------


class MutationIn(serializers.Serializer[Any]):
    """A mutation: only its `id` is checked here (without one it cannot be recorded: a 400). A
    name, args or keys the server cannot read make that mutation `rejected` (`invalid`), recorded
    and advancing like any other (sync.push._refusal): a device is never stuck on one."""

    id = serializers.IntegerField(
        min_value=1, max_value=MAX_MUTATION_ID, help_text="1, 2, 3... per device, never reused."
    )
    # Described as any JSON, as they are read: a mutation without them, or with another name or
    # args that are no object, is recorded and rejected in the 200 (a schema that said "required"
    # or an enum described a 400 the server never sends).
    name = serializers.JSONField(
        required=False,
        help_text=f"One of {', '.join(f'`{n}`' for n in sorted(MUTATIONS))}; another name (or none) "
        "is rejected (`invalid`) in the answer, not a 400.",
    )
    args = serializers.JSONField(
        required=False,
        help_text="The mutation's arguments, an object (README: Offline sync); without one, or another "
        "value, the mutation is rejected (`invalid`) in the answer.",
    )

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {api_settings.NON_FIELD_ERRORS_KEY: [_("Each mutation is {id, name, args}.")]}
            )
        # `"id": "\u0661"` (Arabic-Indic 1) would be read as 1 by int(): a 400 as on every StrictSerializer.
        refuse_loosely_typed({"id": self.fields["id"]}, data)
        try:
            mutation_id = self.fields["id"].run_validation(data.get("id", empty))
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"id": exc.detail}) from None
        return {**data, "id": mutation_id}  # the rest as sent: push rejects a bad one alone


class PushIn(StrictSerializer):
    device_id = serializers.UUIDField()
    mutations = serializers.ListField(
        child=MutationIn(), min_length=1, max_length=settings.OKADA_SYNC_PUSH_MAX_MUTATIONS
    )


class MutationResultOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["applied", "duplicate", "rejected", "conflict"])
    code = serializers.CharField(allow_null=True, help_text="Error code (rejected) or conflict kind.")
    conflict_id = serializers.UUIDField(allow_null=True)


class PushOut(serializers.Serializer[Any]):
    last_mutation_id = serializers.IntegerField()
    results = MutationResultOut(many=True)


class PushApi(ApiView):
    required_scopes = {"POST": "sync"}
    allowed_roles = {VENDOR}
    idempotent = False

    @extend_schema(
        operation_id="sync_push",
        summary="Push mutations made offline",
        description="Each mutation is applied exactly once, in order: a retry answers `duplicate` "
        "with the stored result; a skipped id is a 409 `mutation_gap`; a busy database a 503 "
        "`try_again` (nothing of that mutation was kept: send the same push again). A mutation "
        "refused for good is `rejected` with its error code and still advances `last_mutation_id`, "
        "the rest of the push applied in order: also one with an unknown `name`, `args` that are "
        "not an object (or hold a NUL character, or nest deeper than 32 levels) or other keys "
        "(`invalid`). Only an envelope that cannot be recorded is a 400 `invalid`, nothing "
        "applied: no valid `device_id`, `mutations` not a list of 1 to "
        "OKADA_SYNC_PUSH_MAX_MUTATIONS objects, an `id` missing or not a positive integer, ids "
        "not going up by one.",
        request=PushIn,
        responses={
            200: PushOut,
            503: OpenApiResponse(description="The database was busy: retry after Retry-After."),
        },
        examples=[
            OpenApiExample(
                "a sale at the counter",
                value={
                    "device_id": "0192f6d2-8b1c-7c3e-9a51-3f2b9c1d4e5f",
                    "mutations": [
                        {
                            "id": 1,
                            "name": "stock.adjust",
                            "args": {"product_id": "0192f6d2-9c3e-7a51-8b1c-2e4f6a8b0c1d", "delta": -2},
                        }
                    ],
                },
                request_only=True,
            )
        ],
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        data = validated(PushIn, request.data)
        try:
            result = push(
                actor=self.actor,
                device_id=data["device_id"],
                mutations=[dict(m) for m in data["mutations"]],
                scopes=self.credential.scopes,
            )
        except TryAgain as busy:
            return problem_response(busy, headers={"Retry-After": str(busy.data["retry_after"])})
        return Response(result.as_dict())
