"""Catalog endpoints of `/api/v1/`: products, bulk upsert, stock, categories.

Thin views: validate input, call a selector or service, serialize. A vendor credential reaches
only its vendor's products (anything else is a 404, as if it did not exist); the storefront reads
the products customers may order. Writes go through catalog.services only.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from typing import Any

import orjson
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from okada.core.actors import Actor
from okada.core.api.pagination import LIST_PARAMETERS, LIST_QUERY, CursorPage, page_of
from okada.core.api.problems import flatten_errors
from okada.core.api.schema import problem_response
from okada.core.api.serializers import (
    StrictSerializer,
    UtcDateTimeField,
    VisibleCharField,
    query_bool,
    query_datetime,
    query_text,
    query_uuid,
    utc,
    validated,
)
from okada.core.api.views import ApiView
from okada.core.errors import InvalidInput, NotFound
from okada.core.fields import JSON_NUL, JSON_TOO_DEEP, json_refusal
from okada.core.texts import Text

from . import selectors, services
from .models import Category, Product, ProductQuerySet, ProductUnit, Stock, Vendor
from .skus import SKU_MAX_LENGTH, normalize_sku

VENDOR, STOREFRONT = Actor.VENDOR, Actor.STOREFRONT
MAX_PRICE_XAF = 1_000_000_000
# The catalog and stock writes a suspended vendor's own credentials are refused (see README).
SUSPENDED = problem_response(
    services.VendorSuspended,
    "the credential's vendor is suspended (Okada staff alone change its catalog and stock)",
)
MAX_STOCK = services.MAX_STOCK
MAX_DELTA = services.MAX_DELTA
PRODUCT_ORDERINGS = (
    "-updated_at",
    "updated_at",
    "-created_at",
    "created_at",
    "name",
    "-name",
    "sku",
    "-sku",
    "price_xaf",
    "-price_xaf",
)
CATEGORY_ORDERINGS = ("position", "name_fr", "-updated_at", "updated_at")

# --- Output -----------------------------------------------------------------------------------------


class StockOut(serializers.Serializer[Any]):
    product = serializers.UUIDField()
    on_hand = serializers.IntegerField()
    reserved = serializers.IntegerField(help_text="Units promised to open orders (read-only).")
    available = serializers.IntegerField(help_text="on_hand - reserved.")
    version = serializers.IntegerField()

    def to_representation(self, stock: Stock) -> dict[str, Any]:
        return stock_json(stock)


def stock_json(stock: Stock) -> dict[str, Any]:
    return {
        "product": str(stock.product_id),
        "on_hand": stock.on_hand,
        "reserved": stock.reserved,
        "available": stock.on_hand - stock.reserved,
        "version": stock.version,
    }


class ProductOut(serializers.Serializer[Any]):
    """The schema of a product; PostgreSQL writes the JSON itself (`selectors.PRODUCT_JSON`)."""

    id = serializers.UUIDField()
    vendor = serializers.UUIDField()
    sku = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    category = serializers.UUIDField(allow_null=True)
    price_xaf = serializers.IntegerField()
    compare_at_price_xaf = serializers.IntegerField(allow_null=True)
    unit = serializers.ChoiceField(choices=ProductUnit.choices)
    is_active = serializers.BooleanField()
    attributes = serializers.DictField()
    version = serializers.IntegerField(help_text="Incremented on every change: send it back in If-Match.")
    stock = StockOut()
    created_at = UtcDateTimeField()
    updated_at = UtcDateTimeField()


class CategoryOut(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    parent = serializers.UUIDField(allow_null=True)  # type: ignore[assignment]  # a field, not .parent
    slug = serializers.CharField()
    name_fr = serializers.CharField()
    name_en = serializers.CharField()
    position = serializers.IntegerField()
    updated_at = UtcDateTimeField()

    def to_representation(self, category: Category) -> dict[str, Any]:
        return {
            "id": str(category.pk),
            "parent": str(category.parent_id) if category.parent_id else None,
            "slug": category.slug,
            "name_fr": category.name_fr,
            "name_en": category.name_en,
            "position": category.position,
            "updated_at": utc(category.updated_at),
        }


# --- Input ------------------------------------------------------------------------------------------


class AttributesField(serializers.DictField):
    """Free-form attributes: a JSON object that PostgreSQL can store (no NUL character) and that
    is nested at most MAX_JSON_DEPTH levels (okada.core.fields.json_refusal).

    A refusal is raised with its code, whose message (`error_messages`) is the refusal's msgid:
    so a check whose refusal is stored (a sync mutation's, `validated_or_texts`) reads it back as
    that msgid and its parameters, shown later in the reader's language."""

    default_error_messages = {"nul": _(JSON_NUL), "too_deep": _(JSON_TOO_DEEP)}
    refusal_codes = {JSON_NUL: "nul", JSON_TOO_DEEP: "too_deep"}

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        value = super().to_internal_value(data)
        refusal = json_refusal(value)
        if refusal is not None:
            raise serializers.ValidationError(str(refusal), code=self.refusal_codes[refusal.msgid])
        return value


# The live categories a bulk upsert's items name, read in one query before the items are
# validated (ProductBulkApi): otherwise each item naming a category costs one.
_known_categories: ContextVar[dict[uuid.UUID, Category] | None] = ContextVar(
    "okada_known_categories", default=None
)


class CategoryRefField(serializers.UUIDField):
    """A live category's id -> the Category (unknown or deleted ids are a 400 on this field)."""

    def to_internal_value(self, data: Any) -> Category:  # type: ignore[override]
        pk = super().to_internal_value(data)
        known = _known_categories.get()
        category = known.get(pk) if known is not None else Category.objects.filter(pk=pk).first()
        if category is None:
            raise serializers.ValidationError(_("No such category."))
        return category


class SkuField(serializers.CharField):
    """A SKU, read in Unicode NFC (catalog.skus): its length is checked on the form stored."""

    def to_internal_value(self, data: Any) -> str:
        return normalize_sku(super().to_internal_value(data))


class ProductFieldsIn(StrictSerializer):
    read_only_names = (
        "id",
        "vendor",
        "version",  # read-only but in a PATCH (ProductPatchIn declares it)
        "stock",
        "on_hand",
        "reserved",
        "available",
        "created_at",
        "updated_at",
    )

    sku = SkuField(max_length=64)
    name = VisibleCharField(max_length=200)
    description = serializers.CharField(max_length=10_000, allow_blank=True, required=False)
    category = CategoryRefField(allow_null=True, required=False)
    price_xaf = serializers.IntegerField(min_value=1, max_value=MAX_PRICE_XAF)
    compare_at_price_xaf = serializers.IntegerField(
        min_value=1, max_value=MAX_PRICE_XAF, allow_null=True, required=False
    )
    unit = serializers.ChoiceField(choices=ProductUnit.choices, required=False)
    is_active = serializers.BooleanField(required=False)
    attributes = AttributesField(required=False)


class ProductCreateIn(ProductFieldsIn):
    initial_stock = serializers.IntegerField(
        min_value=0, max_value=MAX_STOCK, required=False, help_text="Units on hand at creation (restock)."
    )


class ProductPatchIn(ProductFieldsIn):
    version = serializers.IntegerField(
        min_value=1,
        max_value=2**31 - 1,
        required=False,
        help_text="The version you read: refused with 409 version_conflict if it changed (or If-Match).",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, partial=True, **kwargs)


class BulkItemIn(ProductCreateIn):
    """An item of a bulk upsert: `sku` finds the product; `initial_stock` counts only for new ones."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # An existing product keeps what an item does not say; a new one needs name and price.
        for name in ("name", "price_xaf"):
            self.fields[name].required = False


class BulkIn(StrictSerializer):
    items = serializers.ListField(
        child=serializers.DictField(), min_length=1, max_length=services.BULK_MAX_ITEMS
    )


class BulkResultOut(serializers.Serializer[Any]):
    index = serializers.IntegerField()
    sku = serializers.CharField(
        help_text="The item's SKU in Unicode NFC, as stored and shown everywhere, for a refused item "
        'too ("" if it sent no text or number): match results by it, or by index.'
    )
    status = serializers.ChoiceField(
        choices=["created", "updated", "unchanged", "failed", "rolled_back"],
        help_text="`rolled_back`: a valid item of an `atomic=true` request another item failed.",
    )
    id = serializers.UUIDField(required=False)
    version = serializers.IntegerField(required=False)
    code = serializers.CharField(required=False)
    detail = serializers.CharField(required=False)
    errors = serializers.DictField(  # type: ignore[assignment]  # a field, not .errors
        child=serializers.ListField(child=serializers.CharField()), required=False
    )


class BulkOut(serializers.Serializer[Any]):
    atomic = serializers.BooleanField()
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    failed = serializers.IntegerField()
    results = BulkResultOut(many=True)


# What a stock answer shows (StockOut) and a client may not set: refused as read-only, not unknown.
STOCK_READ_ONLY = ("product", "on_hand", "reserved", "available", "version")


class StockAdjustmentIn(StrictSerializer):
    read_only_names = STOCK_READ_ONLY

    delta = serializers.IntegerField(min_value=-MAX_DELTA, max_value=MAX_DELTA, help_text="Non-zero.")
    reason = serializers.CharField(max_length=255)
    reference = serializers.CharField(max_length=100, allow_blank=True, required=False)


class StockCountIn(StrictSerializer):
    read_only_names = STOCK_READ_ONLY

    on_hand = serializers.IntegerField(min_value=0, max_value=MAX_STOCK)
    expected_on_hand = serializers.IntegerField(
        min_value=0, max_value=MAX_STOCK, help_text="What you counted from: refused (409) if it moved."
    )


# --- Views --------------------------------------------------------------------------------------------

PRODUCT_EXAMPLE = {
    "id": "0192f6d2-8b1c-7c3e-9a51-3f2b9c1d4e5f",
    "vendor": "0192f6d2-8b1c-7aaa-8b51-3f2b9c1d4e50",
    "sku": "PLT-001",
    "name": "Plantain mûr le tas",
    "description": "",
    "category": None,
    "price_xaf": 1500,
    "compare_at_price_xaf": None,
    "unit": "bunch",
    "is_active": True,
    "attributes": {"origin": "Penja"},
    "version": 3,
    "stock": {
        "product": "0192f6d2-8b1c-7c3e-9a51-3f2b9c1d4e5f",
        "on_hand": 40,
        "reserved": 2,
        "available": 38,
        "version": 7,
    },
    "created_at": "2026-11-20T08:00:00.000000Z",
    "updated_at": "2026-11-22T09:30:00.000000Z",
}


class ProductScope(ApiView):
    """The products a credential may see: its vendor's (vendor), the orderable ones (storefront)."""

    def scope(self, vendor_id: uuid.UUID | None = None) -> dict[str, Any]:
        """The selectors' arguments for that; `vendor_id`: the storefront's choice of one vendor."""
        if self.actor.role == VENDOR:
            return {"vendor_id": self.actor.vendor_id}
        return {"vendor_id": vendor_id, "orderable": True}

    def products(self) -> ProductQuerySet:
        return selectors.product_list(**self.scope())

    def product(self, pk: uuid.UUID) -> Product:
        product = self.products().filter(pk=pk).first()
        if product is None:
            raise NotFound(_("No such product."))
        return product

    def vendor(self) -> Vendor:
        vendor = Vendor.objects.filter(pk=self.actor.vendor_id).first()
        if vendor is None:
            raise NotFound(_("No such vendor."))
        return vendor


@extend_schema_view(
    get=extend_schema(
        operation_id="products_list",
        summary="List products",
        description="A vendor's own products; for the storefront, the products customers may order. "
        "`q` is full-text search (French and English, accents ignored).",
        parameters=[
            *LIST_PARAMETERS,
            OpenApiParameter(
                "q",
                str,
                description="Full-text search of name, description and SKU: French and English, "
                "accents and case ignored, every word must match (`or` between words: either; "
                "quotes: the words in that order, in one vendor's products only (a vendor key, or "
                "`vendor`); across the marketplace a quoted phrase's words are read as words; a "
                "word's leading `-` is ignored, not a NOT). "
                "Text with no word to look for (`!!!`, `-`) is a 400. At most 200 characters.",
            ),
            OpenApiParameter("is_active", bool, description="true or false (any case), or 1 or 0."),
            OpenApiParameter("category", uuid.UUID),
            OpenApiParameter("vendor", uuid.UUID, description="Storefront: one vendor's products."),
            OpenApiParameter(
                "ordering", str, enum=list(PRODUCT_ORDERINGS), description="Default -updated_at."
            ),
        ],
        responses={200: page_of(ProductOut)},
        tags=["products"],
    ),
    post=extend_schema(
        operation_id="products_create",
        summary="Create a product",
        request=ProductCreateIn,
        responses={201: ProductOut, 403: SUSPENDED},
        examples=[
            OpenApiExample(
                "new product",
                value={
                    "sku": "PLT-001",
                    "name": "Plantain mûr le tas",
                    "price_xaf": 1500,
                    "initial_stock": 40,
                },
                request_only=True,
            ),
            OpenApiExample("created", value=PRODUCT_EXAMPLE, response_only=True, status_codes=["201"]),
        ],
        tags=["products"],
    ),
)
class ProductListApi(ProductScope):
    required_scopes = {"GET": "products:read", "POST": "products:write"}
    allowed_roles = {"GET": {VENDOR, STOREFRONT}, "POST": {VENDOR}}
    query_params = {"GET": (*LIST_QUERY, "q", "is_active", "category", "vendor", "ordering")}

    def get(self, request: Request) -> Response:
        page = CursorPage(request, orderings=PRODUCT_ORDERINGS, default="-updated_at")
        vendor_id = query_uuid(request, "vendor")
        if self.actor.role == VENDOR and vendor_id not in (None, self.actor.vendor_id):
            # Not ignored: a vendor asking for another's list would get its own and not know.
            raise InvalidInput(
                _("A vendor credential lists its own products only: leave out vendor."), field="vendor"
            )
        rows = selectors.product_page(
            **self.scope(vendor_id),
            q=query_text(request, "q"),
            is_active=query_bool(request, "is_active"),
            category_id=query_uuid(request, "category"),
            updated_since=query_datetime(request, "updated_since"),
            ordering=page.read_ordering,
            after=page.position(Product),
            limit=page.limit + 1,
        )
        # Rows of (JSON text, sort key, id) as text: the cursors are made of the last two.
        found = page.page(rows, key=lambda row: (page.sort_value(Product, row[1]), row[2]))
        return found.json_response(row[0] for row in found.rows)

    def post(self, request: Request) -> Response:
        data = validated(ProductCreateIn, request.data)
        product = services.product_create(vendor=self.vendor(), actor=self.actor, **data)
        response = _product_response(product, status.HTTP_201_CREATED)
        response["Location"] = request.build_absolute_uri(reverse("api-product", args=[product.pk]))
        return response


def _product_response(product: Product, code: int = status.HTTP_200_OK) -> Response:
    found = selectors.product_json(pk=product.pk)
    if found is None:
        raise NotFound(_("No such product."))
    text, version = found
    return Response(orjson.Fragment(text), status=code, headers={"ETag": f'"{version}"'})


def _if_match(request: Request) -> list[int] | None:
    """The versions `If-Match` names (None without one, or `*`): our ETag as sent, `"3"`, or a
    list of them (RFC 9110 13.1.1: met when one is current). Also `W/"3"`: GZipMiddleware
    weakens the ETag of every compressed answer, so that is what a client asking for gzip gets
    and echoes; it still names exactly one version of ours. An unquoted `3` is no ETag: refused
    rather than read as a version, as is a list with anything else in it."""
    raw = request.headers.get("If-Match")
    if raw is None or raw.strip() == "*":
        return None
    versions = []
    for tag in raw.split(","):  # our ETags hold digits only: a comma always separates two
        value = tag.strip().removeprefix("W/")
        digits = value[1:-1] if len(value) > 2 and value[0] == value[-1] == '"' else ""
        if not (digits.isascii() and digits.isdigit()) or len(digits) > 9:  # "²".isdigit() holds
            raise InvalidInput(_('If-Match is the product version as an ETag, e.g. "3".'), field="If-Match")
        versions.append(int(digits))
    return versions


def _expected_version(request: Request, product: Product, body_version: int | None = None) -> int | None:
    """The version a change is made against: `If-Match`, or `version` in the body, or both when
    they agree (two different ones are a client's mistake, not a choice for us to make). Of an
    If-Match list, the product's version when the list holds it (the service still compares it
    under the row's lock), else the newest named: a 409 either way when it has changed."""
    header = _if_match(request)
    if header is not None and body_version is not None and body_version not in header:
        raise InvalidInput(
            Text(
                gettext_noop("If-Match (%(header)s) and version (%(body)s) disagree: send one of them."),
                header=", ".join(map(str, header)),
                body=body_version,
            ),
            field="version",
        )
    if header is None or body_version is not None:
        return body_version
    return product.version if product.version in header else max(header)


@extend_schema_view(
    get=extend_schema(
        operation_id="products_retrieve",
        summary="Read a product",
        description='Its `ETag` is its version (`"3"`): send it back in `If-Match` to change it.',
        responses={200: ProductOut},
        tags=["products"],
    ),
    patch=extend_schema(
        operation_id="products_update",
        summary="Change a product",
        description='Only the fields sent change. With `If-Match: "<version>"` (or `version` in the '
        "body) a product changed meanwhile is refused with 409 `version_conflict`.",
        parameters=[OpenApiParameter("If-Match", str, OpenApiParameter.HEADER)],
        request=ProductPatchIn,
        responses={200: ProductOut, 403: SUSPENDED},
        examples=[OpenApiExample("new price", value={"price_xaf": 1750, "version": 3}, request_only=True)],
        tags=["products"],
    ),
    delete=extend_schema(
        operation_id="products_destroy",
        summary="Delete a product",
        description="Soft delete: it leaves the lists and the storefront; its history, stock "
        'ledger and past orders keep it, and staff can restore it. With `If-Match: "<version>"` a '
        "product changed meanwhile is refused with 409 `version_conflict`. It takes no body: one "
        '(`{"version": 3}` included) is a 400 naming its fields, and nothing is deleted.',
        parameters=[OpenApiParameter("If-Match", str, OpenApiParameter.HEADER)],
        responses={204: None, 403: SUSPENDED},
        tags=["products"],
    ),
)
class ProductDetailApi(ProductScope):
    required_scopes = {"GET": "products:read", "PATCH": "products:write", "DELETE": "products:write"}
    allowed_roles = {"GET": {VENDOR, STOREFRONT}, "PATCH": {VENDOR}, "DELETE": {VENDOR}}

    def get(self, request: Request, pk: uuid.UUID) -> Response:
        return _product_response(self.product(pk))

    def patch(self, request: Request, pk: uuid.UUID) -> Response:
        product = self.product(pk)
        data = validated(ProductPatchIn, request.data)
        fields = dict(data)
        expected = _expected_version(request, product, fields.pop("version", None))
        product = services.product_update(
            product=product, data=fields, actor=self.actor, expected_version=expected
        )
        return _product_response(product)

    def delete(self, request: Request, pk: uuid.UUID) -> Response:
        product = self.product(pk)
        _refuse_a_body(request)
        services.product_soft_delete(
            product=product,
            actor=self.actor,
            reason=gettext_noop("deleted through the API"),
            expected_version=_expected_version(request, product),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


def _refuse_a_body(request: Request) -> None:
    """A DELETE takes its version in If-Match and nothing in a body. DRF read the body of none:
    `{"version": 1}`, which PATCH honours, deleted a product changed since as if unsent. An
    empty body (none, `{}` or `null`) sends nothing."""
    data = request.data
    if data is None or (isinstance(data, dict) and not data):
        return
    errors: dict[str, list[Any]] = {}
    if isinstance(data, dict):
        errors = {
            name: [_('Send the version in If-Match, e.g. "3".') if name == "version" else _("Unknown field.")]
            for name in sorted(data)
        }
    raise InvalidInput(_("A DELETE takes no body: send the version in If-Match."), errors=errors)


def _sent_sku(value: Any) -> str:
    """The SKU of a refused bulk item as its result names it: what the API reads as a text (as
    CharField does: a text or a number), in Unicode NFC like the SKU of every other result (a
    script matches results by one spelling), else "" (never "None", "True" or a dict's repr,
    which a script matching results by SKU could take for real SKUs). Cut to the column's length
    after normalising: what would be stored."""
    if isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return normalize_sku(str(value))[:SKU_MAX_LENGTH]
    return ""


def _categories_named(items: list[dict[str, Any]]) -> dict[uuid.UUID, Category]:
    """The live categories of the ids `items` name, in one query (the others are refused by
    CategoryRefField as when it reads them one by one)."""
    ids = set()
    as_id = serializers.UUIDField()  # what CategoryRefField reads first
    for item in items:
        if item.get("category") is not None:
            try:
                ids.add(as_id.to_internal_value(item["category"]))
            except serializers.ValidationError:
                continue  # not an id: CategoryRefField says so
    return Category.objects.in_bulk(ids) if ids else {}


def _invalid_item(index: int, sku: str, errors: dict[str, list[str]]) -> dict[str, Any]:
    """The result of a bulk item the API rules refused (before the services saw it)."""
    return {
        "index": index,
        "sku": sku,
        "status": "failed",
        "code": "invalid",
        "detail": _("This item is not valid."),
        "errors": errors,
    }


class ProductBulkApi(ProductScope):
    required_scopes = {"POST": "products:write"}
    allowed_roles = {VENDOR}
    query_params = {"POST": ("atomic",)}

    @extend_schema(
        operation_id="products_bulk_upsert",
        summary="Create or update up to 500 products by SKU",
        description="Each item is matched by `sku` among the vendor's live products: an existing "
        "product gets the fields given, a new one is created (`name` and `price_xaf` needed; "
        "`initial_stock` counts only then). Partial failure: `?atomic=false` (the default) applies "
        "each item on its own and the answer (200) says per item what happened; `?atomic=true` "
        "applies all or none: one failed item gives a 400 `bulk_rejected` whose `errors` "
        "name the items (`items.3.price_xaf`) and nothing is changed.",
        parameters=[
            OpenApiParameter(
                "atomic",
                bool,
                description="All-or-nothing (default false): true or false (any case), or 1 or 0.",
            )
        ],
        request=BulkIn,
        responses={200: BulkOut, 403: SUSPENDED},
        examples=[
            OpenApiExample(
                "two items",
                value={
                    "items": [
                        {"sku": "PLT-001", "price_xaf": 1600},
                        {"sku": "HUI-5L", "name": "Huile de palme rouge 5 L", "price_xaf": 6500},
                    ]
                },
                request_only=True,
            ),
            OpenApiExample(
                "results",
                value={
                    "atomic": False,
                    "created": 1,
                    "updated": 1,
                    "unchanged": 0,
                    "failed": 0,
                    "results": [
                        {
                            "index": 0,
                            "sku": "PLT-001",
                            "status": "updated",
                            "id": PRODUCT_EXAMPLE["id"],
                            "version": 4,
                        },
                        {
                            "index": 1,
                            "sku": "HUI-5L",
                            "status": "created",
                            "id": "0192f6d2-8b1c-7c3e-9a51-3f2b9c1d4e60",
                            "version": 1,
                        },
                    ],
                },
                response_only=True,
                status_codes=["200"],
            ),
        ],
        tags=["products"],
    )
    def post(self, request: Request) -> Response:
        atomic = bool(query_bool(request, "atomic"))
        envelope = validated(BulkIn, request.data)
        items: list[dict[str, Any]] = []
        invalid: dict[int, dict[str, list[str]]] = {}
        token = _known_categories.set(_categories_named(envelope["items"]))
        try:
            for index, raw in enumerate(envelope["items"]):
                try:
                    items.append(validated(BulkItemIn, raw))
                except serializers.ValidationError as exc:
                    invalid[index] = flatten_errors(exc.detail)
                    items.append({"sku": _sent_sku(raw.get("sku"))})
        finally:
            _known_categories.reset(token)
        if atomic and invalid:
            # Nothing is tried: the answer has the service's shape, every valid item rolled back.
            raise services.BulkRejected(
                Text(gettext_noop("Item %(i)d is not valid: nothing was applied."), i=min(invalid)),
                errors={f"items.{i}.{f}": ms for i, errors in invalid.items() for f, ms in errors.items()},
                results=[
                    _invalid_item(index, item["sku"], invalid[index])
                    if index in invalid
                    else {"index": index, "sku": item["sku"], "status": "rolled_back"}
                    for index, item in enumerate(items)
                ],
            )
        valid = [(i, item) for i, item in enumerate(items) if i not in invalid]
        results = services.product_upsert_many(
            vendor=self.vendor(), items=[item for _, item in valid], actor=self.actor, atomic=atomic
        )
        out: list[dict[str, Any]] = []
        by_index = {i: result for (i, _), result in zip(valid, results, strict=True)}
        for index, item in enumerate(items):
            if index in invalid:
                out.append(_invalid_item(index, item["sku"], invalid[index]))
            else:
                out.append({**by_index[index].as_dict(), "index": index})
        counts = {
            s: sum(1 for r in out if r["status"] == s) for s in ("created", "updated", "unchanged", "failed")
        }
        return Response({"atomic": atomic, **counts, "results": out})


class StockAdjustmentApi(ProductScope):
    required_scopes = {"POST": "stock:write"}
    allowed_roles = {VENDOR}

    @extend_schema(
        operation_id="stock_adjust",
        summary="Add or remove units on hand",
        description="Commutative: concurrent adjustments all apply. Refused with 409 "
        "`insufficient_stock` below zero or below the units reserved by open orders.",
        request=StockAdjustmentIn,
        responses={201: StockOut, 403: SUSPENDED},
        examples=[
            OpenApiExample(
                "delivery",
                value={"delta": 24, "reason": "delivery", "reference": "BL-2026-118"},
                request_only=True,
            )
        ],
        tags=["stock"],
    )
    def post(self, request: Request, pk: uuid.UUID) -> Response:
        product = self.product(pk)
        data = validated(StockAdjustmentIn, request.data)
        stock = services.stock_adjust(product=product, actor=self.actor, **data)
        return Response(stock_json(stock), status=status.HTTP_201_CREATED)


class StockCountApi(ProductScope):
    required_scopes = {"PUT": "stock:write"}
    allowed_roles = {VENDOR}

    @extend_schema(
        operation_id="stock_count",
        summary="Set the counted stock (compare-and-set)",
        description="Refused with 409 `stock_changed` when on_hand is no longer `expected_on_hand`.",
        request=StockCountIn,
        responses={200: StockOut, 403: SUSPENDED},
        examples=[OpenApiExample("count", value={"on_hand": 38, "expected_on_hand": 40}, request_only=True)],
        tags=["stock"],
    )
    def put(self, request: Request, pk: uuid.UUID) -> Response:
        product = self.product(pk)
        data = validated(StockCountIn, request.data)
        stock = services.stock_count(product=product, actor=self.actor, **data)
        return Response(stock_json(stock))


class CategoryListApi(ApiView):
    required_scopes = {"GET": "products:read"}
    query_params = {"GET": (*LIST_QUERY, "parent", "ordering")}

    @extend_schema(
        operation_id="categories_list",
        summary="List categories",
        description="The category tree, in its display order; `parent` gives one category's children.",
        parameters=[
            *LIST_PARAMETERS,
            OpenApiParameter("parent", uuid.UUID),
            OpenApiParameter("ordering", str, enum=list(CATEGORY_ORDERINGS), description="Default position."),
        ],
        responses={200: page_of(CategoryOut)},
        tags=["catalog"],
    )
    def get(self, request: Request) -> Response:
        page = CursorPage(request, orderings=CATEGORY_ORDERINGS, default="position")
        categories = selectors.category_list(
            parent_id=query_uuid(request, "parent"), updated_since=query_datetime(request, "updated_since")
        )
        rows = page.paginate(categories)
        return rows.response(CategoryOut(rows.rows, many=True).data)
