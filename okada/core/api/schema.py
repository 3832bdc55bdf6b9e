"""OpenAPI (drf-spectacular): every error response described as problem+json, with examples,
and the headers the API reads and writes on every operation."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details. Extra members carry machine-readable details "
    "(e.g. `items` short of stock, `allowed` transitions, `current_version`).",
    "properties": {
        "type": {"type": "string", "example": "urn:okada:problem:not_found"},
        "title": {"type": "string", "example": "Not found"},
        "status": {"type": "integer", "example": 404},
        "detail": {"type": "string", "example": "Not found."},
        "code": {"type": "string", "example": "not_found"},
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
            "description": "Messages per field (dotted paths for nested fields: items.0.quantity).",
        },
    },
    "required": ["type", "title", "status", "detail", "code", "errors"],
    "additionalProperties": True,
}

# status -> (description, example code); each operation gets those that can happen to it.
PROBLEMS: dict[str, tuple[str, str]] = {
    "400": ("Invalid input (`invalid`, `malformed`): `errors` names the fields.", "invalid"),
    "401": ("No credential, or an invalid, expired or revoked one.", "not_authenticated"),
    "403": ("The credential lacks the scope or role for this.", "not_allowed"),
    "404": ("No such object, or another vendor's.", "not_found"),
    "405": ("Method not allowed.", "method_not_allowed"),
    "406": ("Only JSON is served.", "not_acceptable"),
    "408": ("The request body did not arrive in time: send it again.", "request_timeout"),
    "409": ("The current state refuses the change, or the Idempotency-Key is in flight.", "conflict"),
    "413": ("Request body over the size cap.", "payload_too_large"),
    "414": (
        "The URL is too long (over 4,094 bytes with its query): fewer or shorter parameters.",
        "uri_too_long",
    ),
    "415": ("The body must be JSON.", "unsupported_media_type"),
    "422": ("Idempotency-Key reused for a different request.", "idempotency_mismatch"),
    "429": ("Rate limit reached: see Retry-After.", "throttled"),
    "431": ("Too many request headers (over 100), or one over 8,190 bytes.", "headers_too_large"),
    "500": ("Server fault; nothing was applied.", "internal"),
    "503": ("A concurrent change stopped this one; nothing was applied: send it again.", "try_again"),
}
# 408, 414 and 431 too: any request may stall, or carry too long a URL or too many headers
# (gunicorn answers those two before Django, in problem+json: okada.core.api.unreadable).
ALWAYS = ("400", "401", "403", "405", "406", "408", "413", "414", "415", "429", "431", "500")
WRITES = ("409", "422", "503")
WITH_ID = ("404",)

RATE_HEADERS = {
    name: {"schema": {"type": "integer"}, "description": text}
    for name, text in (
        ("RateLimit-Limit", "Requests allowed per window for this credential."),
        ("RateLimit-Remaining", "Requests left in the current window."),
        ("RateLimit-Reset", "Seconds until the window resets."),
    )
}
# On every answer (RequestContextMiddleware; the rate limiter's policy when a limit applied).
EVERY_ANSWER_HEADERS = {
    "X-Request-ID": {
        "schema": {"type": "string"},
        "description": "The request's id (the caller's own X-Request-ID when it sent a sane one); "
        "quote it when reporting a problem.",
    },
    "RateLimit-Policy": {"schema": {"type": "string"}, "description": 'The limit applied, e.g. "600;w=60".'},
    **RATE_HEADERS,
}
REPLAYED_HEADER = {
    "Idempotent-Replayed": {
        "schema": {"type": "string", "enum": ["true"]},
        "description": "This answer is the stored answer to an earlier request with the same "
        "Idempotency-Key.",
    }
}
ETAG_HEADER = {
    "ETag": {
        "schema": {"type": "string"},
        "description": 'The product\'s version, e.g. "3": send it back in If-Match.',
    }
}
# The operations answering with a product, hence its ETag (catalog.apis._product_response).
WITH_ETAG = {"products_create", "products_retrieve", "products_update"}
# The operations whose 201 says where the new object is read.
WITH_LOCATION = {"products_create", "orders_place"}
LOCATION_HEADER = {"Location": {"schema": {"type": "string", "format": "uri"}, "description": "Its URL."}}
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    # What idempotency.validate_key takes: 1 to 255 characters Python calls printable (a header
    # is read as Latin-1: no control character, no NBSP, no soft hyphen); any other is a 400.
    {
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "pattern": "^[^\\u0000-\\u001f\\u007f-\\u00a0\\u00ad]+$",
    },
    OpenApiParameter.HEADER,
    description="Up to 255 characters, one per distinct request: a retry with it replays the first "
    "answer (`Idempotent-Replayed: true`); the same key with another request is a 422; while the "
    "first is still running, a 409. Kept 24 h.",
)


class OkadaSchema(AutoSchema):
    """drf-spectacular's, with:
    - descriptions only where an operation gives one (@extend_schema): a view's docstring is
      written for the developers (scopes, class attributes), not for the API's users;
    - the Idempotency-Key header on every POST whose view keeps answers (`ApiView.idempotent`).
    """

    def get_description(self) -> str:  # type: ignore[override]  # drf-spectacular's signature
        return ""

    def get_override_parameters(self) -> list[Any]:
        parameters = list(super().get_override_parameters())
        if self.method == "POST" and getattr(self.view, "idempotent", False):
            parameters.append(IDEMPOTENCY_KEY)
        return parameters


def _problem(status: str) -> dict[str, Any]:
    description, code = PROBLEMS[status]
    response: dict[str, Any] = {
        "description": description,
        "content": {
            "application/problem+json": {
                "schema": {"$ref": "#/components/schemas/Problem"},
                "example": {
                    "type": f"urn:okada:problem:{code}",
                    "title": description.split(":")[0].split("(")[0].strip().rstrip("."),
                    "status": int(status),
                    "detail": description,
                    "code": code,
                    "errors": {"price_xaf": ["Ensure this value is greater than or equal to 1."]}
                    if code == "invalid"
                    else {},
                },
            }
        },
    }
    if status in ("409", "429"):  # throttled, or an Idempotency-Key still in flight
        when = "always" if status == "429" else "with `idempotency_in_flight` only"
        response["headers"] = {
            "Retry-After": {"schema": {"type": "integer"}, "description": f"Seconds to wait ({when})."}
        }
    return response


def problem_response(error: Any, when: str) -> Any:
    """An error response an operation documents itself (in @extend_schema `responses`): the
    generic one for the status of `error` (a DomainError subclass) plus an example of its code,
    the body the API sends (in English), e.g. `{403: problem_response(VendorSuspended, "its
    vendor is suspended")}`. The hook below turns it into problem+json."""
    from django.utils import translation
    from drf_spectacular.types import OpenApiTypes
    from drf_spectacular.utils import OpenApiExample, OpenApiResponse

    from .problems import problem_body

    with translation.override("en"):
        body = problem_body(error())
    return OpenApiResponse(
        response=OpenApiTypes.OBJECT,
        description=f"{PROBLEMS[str(error.status)][0]} Or `{error.code}`: {when}.",
        examples=[
            OpenApiExample(error.code, value=body, status_codes=[str(error.status)], response_only=True)
        ],
    )


def add_problem_responses(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """POSTPROCESSING_HOOK: the Problem schema, and the error responses of every operation."""
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            statuses = list(ALWAYS)
            if method != "get":
                statuses += WRITES
            if "{" in path or method != "get":
                statuses += WITH_ID
            responses = operation.setdefault("responses", {})
            for status in statuses:
                existing = responses.get(status)
                if existing is None:
                    responses[status] = _problem(status)
                elif "application/json" in existing.get("content", {}):
                    # An @extend_schema example for this status: keep it, as problem+json; with
                    # examples of the operation's own codes (`problem_response`), the generic
                    # code's example goes with them.
                    content = existing["content"].pop("application/json")
                    content["schema"] = {"$ref": "#/components/schemas/Problem"}
                    if "examples" in content:
                        generic = _problem(status)["content"]["application/problem+json"]["example"]
                        content["examples"] = {generic["code"]: {"value": generic}, **content["examples"]}
                    existing["content"]["application/problem+json"] = content
            idempotent = any(p.get("name") == "Idempotency-Key" for p in operation.get("parameters", ()))
            for status, response in responses.items():
                headers = response.setdefault("headers", {})
                headers.update(EVERY_ANSWER_HEADERS)
                if status.startswith("2") and idempotent:
                    headers.update(REPLAYED_HEADER)
                if status.startswith("2") and operation.get("operationId") in WITH_ETAG:
                    headers.update(ETAG_HEADER)
                if status == "201" and operation.get("operationId") in WITH_LOCATION:
                    headers.update(LOCATION_HEADER)
    return result


# Request bodies whose members the server checks (any other member is a 400 naming it, README
# "JSON"): described as closed, so that a client (or a fuzzer) reading the schema knows an extra
# member is refused. A sync mutation stays open: the server records any mutation with an id and
# rejects a bad one alone, inside a 200 (MutationIn).
OPEN_REQUEST_BODIES = frozenset({"MutationInRequest"})


def close_request_bodies(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """POSTPROCESSING_HOOK: `additionalProperties: false` on every request component with
    declared members (COMPONENT_SPLIT_REQUEST names them `...Request`), as the API refuses
    unknown fields."""
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request") and name not in OPEN_REQUEST_BODIES and "properties" in component:
            component.setdefault("additionalProperties", False)
    return result


def _register_extensions() -> None:
    """The bearer and signature schemes, described in the schema's securitySchemes."""
    from drf_spectacular.extensions import OpenApiAuthenticationExtension

    class BearerScheme(OpenApiAuthenticationExtension):  # registered by subclassing
        target_class = "okada.core.api.auth.BearerAuthentication"
        name = "bearer"

        def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
            return {
                "type": "http",
                "scheme": "bearer",
                "description": "A vendor or storefront API key (okk_...) or a personal token (okt_...).",
            }

    class SignatureScheme(OpenApiAuthenticationExtension):
        target_class = "okada.core.api.auth.SignedBodyAuthentication"
        name = "signature"
        match_subclasses = True

        def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
            return {
                "type": "apiKey",
                "in": "header",
                "name": "X-Signature",
                "description": "sha256=<hex HMAC-SHA256 of the raw body with the sender's secret>, "
                "hex digits in either case.",
            }


_register_extensions()


def lib_doc_excludes() -> list[Any]:
    """SPECTACULAR_SETTINGS["GET_LIB_DOC_EXCLUDES"]: drf-spectacular describes a component or an
    operation by the first docstring up its class's ancestors, so every input serializer without
    one of its own was described by StrictSerializer's (a developer's note about DRF) and every
    view by ApiView's. Our base classes are skipped as DRF's own are."""
    from drf_spectacular.plumbing import get_lib_doc_excludes

    from .serializers import StrictSerializer
    from .views import ApiView

    return [*get_lib_doc_excludes(), StrictSerializer, ApiView]
