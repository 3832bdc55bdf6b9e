"""The API's conventions: Python's and PostgreSQL's texts of one instant are the same; `validated`
reuses its serializers and answers exactly what a new serializer's `is_valid` would."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.utils import translation
from django.utils.translation import gettext
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

from catalog.apis import (
    BulkItemIn,
    ProductCreateIn,
    ProductOut,
    ProductPatchIn,
    StockAdjustmentIn,
    StockCountIn,
    StockOut,
)
from okada.core.api.serializers import (
    StrictSerializer,
    error_text,
    utc,
    utc_sql,
    validated,
    validated_or_texts,
)
from okada.core.models import JobRun
from okada.core.texts import Text
from orders.apis import (
    CustomerIn,
    CustomerOut,
    OrderItemIn,
    OrderItemOut,
    OrderOut,
    OrderPlaceIn,
    TransitionIn,
)
from sync.apis import DeviceIn, DeviceOut, PullIn, PushIn

pytestmark = pytest.mark.django_db

INSTANTS = [
    dt.datetime(2026, 11, 22, 9, 30, tzinfo=dt.UTC),  # no microseconds: still six digits
    dt.datetime(2026, 11, 22, 9, 30, 0, 123456, tzinfo=dt.UTC),
    dt.datetime(2026, 1, 1, 0, 0, 0, 7, tzinfo=ZoneInfo("Africa/Douala")),  # the day before, in UTC
    dt.datetime(2026, 3, 8, 23, 59, 59, 999999, tzinfo=ZoneInfo("America/St_Johns")),  # a half-hour offset
    dt.datetime(999, 12, 31, 23, 59, 59, tzinfo=dt.UTC),  # a year of three digits
]


@pytest.mark.parametrize("session_zone", ["UTC", "Africa/Douala", "America/St_Johns", "Asia/Kathmandu"])
def test_postgresql_writes_a_time_exactly_as_python_does_whatever_the_session_zone(session_zone):
    runs = [JobRun.objects.create(name=f"probe {i}", started_at=at) for i, at in enumerate(INSTANTS)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('TimeZone', %s, true)", [session_zone])

    texts = dict(JobRun.objects.annotate(text=utc_sql("started_at")).values_list("pk", "text"))

    assert [texts[run.pk] for run in runs] == [utc(instant) for instant in INSTANTS]
    assert utc(INSTANTS[0]) == "2026-11-22T09:30:00.000000Z"
    assert utc(INSTANTS[2]) == "2025-12-31T23:00:00.000007Z"
    assert utc(INSTANTS[4]) == "0999-12-31T23:59:59.000000Z"


def test_no_time_is_none_in_python():
    assert utc(None) is None


# --- validated ----------------------------------------------------------------------------------------


def outcome(serializer_class: Any, data: Any, **kwargs: Any) -> tuple[str, Any]:
    """What `validated` answers: ("valid", data) or ("invalid", the error detail, whose
    ErrorDetails compare with their codes too)."""
    try:
        return "valid", validated(serializer_class, data, **kwargs)
    except serializers.ValidationError as exc:
        return "invalid", exc.detail


def fresh(serializer_class: Any, data: Any) -> tuple[str, Any]:
    """What a new serializer answers: DRF's own way, a deep copy of the fields per call."""
    serializer = serializer_class(data=data)
    if serializer.is_valid():
        return "valid", serializer.validated_data
    errors = dict(serializer.errors)
    if errors == {"non_field_errors": ["No data provided"]}:  # DRF's one untranslated message
        errors = {"non_field_errors": [ErrorDetail(gettext("No data provided"), code="null")]}
    return "invalid", errors


PRODUCT = str(uuid.uuid4())
ORDER: dict[str, Any] = {
    "customer": {"phone": "+237677000111", "name": "Awa"},
    "items": [{"product": PRODUCT, "quantity": 2}],
    "payment_method": "mtn_momo",
    "address": "Ndokoti",
    "zone": str(uuid.uuid4()),
}
# Valid and invalid inputs in turn, so that each call follows one that could have left something.
CASES: list[tuple[Any, Any]] = [
    (OrderPlaceIn, ORDER),
    (OrderPlaceIn, {**ORDER, "id": 1, "coupon": "X", "customer": {"phone": "1", "name": "A" * 201, "id": 3}}),
    (
        OrderPlaceIn,
        {**ORDER, "items": [{"product": "nope", "quantity": 0}, {"product": PRODUCT, "quantity": 1, "x": 1}]},
    ),
    (OrderPlaceIn, {**ORDER, "note": "appeler avant"}),
    (OrderPlaceIn, {**ORDER, "items": []}),
    (OrderPlaceIn, {**ORDER, "items": [{"product": PRODUCT, "quantity": 1}] * 101}),
    (OrderPlaceIn, {**ORDER, "items": {"product": PRODUCT}, "customer": "Awa"}),
    (OrderPlaceIn, None),
    (OrderPlaceIn, ["not", "an", "object"]),
    (OrderPlaceIn, {}),
    (OrderPlaceIn, ORDER),
    (ProductPatchIn, {}),
    (ProductCreateIn, {}),
    (ProductPatchIn, {"price_xaf": 0, "reserved": 1, "colour": "red"}),
    (BulkItemIn, {"sku": "A"}),
    (ProductCreateIn, {"sku": "A"}),
    (BulkItemIn, {"sku": "A", "name": "x" * 201, "stock": 3}),
    (PushIn, {"device_id": PRODUCT, "mutations": [{"id": 0, "name": "nope", "args": {}, "extra": 1}]}),
    (PushIn, {"device_id": PRODUCT, "mutations": [{"id": 1, "name": "stock.adjust", "args": {}}]}),
    (PullIn, {"device_id": PRODUCT, "cursors": {"0": None, "9": "x"}, "limit": 0}),
    (PullIn, {"device_id": PRODUCT, "cursors": {"0": "c" * 2001}}),
    (PullIn, {"device_id": PRODUCT, "cursors": {"1": "abc"}}),
]


def test_validated_answers_what_a_new_serializer_answers_call_after_call_in_both_languages():
    for language in ("en", "fr", "en"):
        with translation.override(language):
            for serializer_class, data in CASES:
                expected = fresh(serializer_class, data)
                assert outcome(serializer_class, data) == expected, (language, data)


def test_a_reused_serializer_keeps_nothing_of_the_previous_call():
    with translation.override("en"):
        first = outcome(OrderPlaceIn, {**ORDER, "coupon": "X", "items": [{"quantity": 0}]})
        second = outcome(OrderPlaceIn, {**ORDER, "note": "first"})
        third = outcome(OrderPlaceIn, {**ORDER, "customer": {"name": "Awa"}})
        fourth = outcome(OrderPlaceIn, ORDER)

    assert first == (
        "invalid",
        {"coupon": ["Unknown field."]},
    )
    assert second[0] == "valid" and second[1]["note"] == "first"
    assert third == ("invalid", {"customer": {"phone": ["This field is required."]}})
    assert fourth[0] == "valid" and "note" not in fourth[1]
    assert fourth[1] is not second[1] and fourth[1]["items"] is not second[1]["items"]


def test_nested_and_many_errors_keep_their_shape():
    body = {**ORDER, "customer": {"phone": "+237677000111"}, "items": [ORDER["items"][0], {"product": "x"}]}
    with translation.override("en"):
        assert outcome(OrderPlaceIn, body) == (
            "invalid",
            {
                "customer": {"name": ["This field is required."]},
                "items": {1: {"product": ["Must be a valid UUID."], "quantity": ["This field is required."]}},
            },
        )


def test_min_and_max_messages_follow_the_language_of_each_call():
    # DRF renders these messages once and keeps the text (lazy_format): in English first, a
    # serializer shared across languages would answer the French request in English.
    body = {**ORDER, "items": [{"product": PRODUCT, "quantity": 0}], "address": "x" * 501}
    answers = {}
    for language in ("en", "fr", "en"):
        with translation.override(language):
            kind, errors = outcome(OrderPlaceIn, body)
            answers[language] = (errors["items"][0]["quantity"], errors["address"])
            assert kind == "invalid"
    assert answers["en"] == (
        ["Ensure this value is greater than or equal to 1."],
        ["The number of characters in this field must not exceed 500."],
    )
    assert answers["fr"] == (
        ["Assurez-vous que cette valeur est supérieure ou égale à\xa01."],
        ["Le nombre de caractères de ce champ ne doit pas dépasser 500."],
    )


class Probe(StrictSerializer):
    """Records the serializer instances that validated something."""

    used: ClassVar[list[Probe]] = []
    n = serializers.IntegerField()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        Probe.used.append(self)
        return attrs


def test_one_serializer_is_reused_per_class_thread_and_language():
    Probe.used.clear()
    with translation.override("en"):
        validated(Probe, {"n": 1})
        validated(Probe, {"n": 2})
    with translation.override("fr"):
        validated(Probe, {"n": 3})

    def in_english() -> None:
        with translation.override("en"):
            validated(Probe, {"n": 4})

    other_thread = threading.Thread(target=in_english)
    other_thread.start()
    other_thread.join()

    english, again, french, elsewhere = Probe.used
    assert again is english
    assert french is not english
    assert elsewhere is not english and elsewhere is not french


class ByContext(StrictSerializer):
    """Fields that depend on the request: never to be kept from one call to the next."""

    def get_fields(self) -> dict[str, serializers.Field]:
        fields: dict[str, serializers.Field] = {"name": serializers.CharField()}
        if self.context.get("staff"):
            fields["internal_note"] = serializers.CharField()
        return fields


def test_context_and_partial_build_a_serializer_for_the_call():
    with translation.override("en"):
        assert validated(ByContext, {"name": "a", "internal_note": "b"}, context={"staff": True}) == {
            "name": "a",
            "internal_note": "b",
        }
        assert outcome(ByContext, {"name": "a", "internal_note": "b"}, context={}) == (
            "invalid",
            {"internal_note": ["Unknown field."]},
        )
        assert validated(TransitionIn, {}, partial=True) == {}
        assert outcome(TransitionIn, {}) == (
            "invalid",
            {"to": ["This field is required."]},
        )


def input_serializers(base: type = StrictSerializer) -> list[Any]:
    found = []
    for cls in base.__subclasses__():
        found += [cls, *input_serializers(cls)]
    return found


def all_fields(field: Any) -> list[Any]:
    children = [field.child] if getattr(field, "child", None) is not None else []
    if isinstance(field, serializers.Serializer):
        children += list(field.fields.values())
    return [field, *(f for child in children for f in all_fields(child))]


def test_no_input_field_has_a_mutable_default():
    # A kept serializer hands the same default object to every request that omits the field: a
    # list or dict default changed by one request would be seen by the next. Use a callable.
    assert {OrderPlaceIn, BulkItemIn, PushIn, PullIn} <= set(input_serializers())
    mutable = [
        (cls.__name__, field.field_name)
        for cls in input_serializers()
        for field in all_fields(cls())
        if isinstance(field.default, (list, dict, set))
    ]
    assert mutable == []


@pytest.mark.parametrize(
    "given, answered",
    [
        (ProductCreateIn, ProductOut),
        (ProductPatchIn, ProductOut),
        (BulkItemIn, ProductOut),
        (StockAdjustmentIn, StockOut),
        (StockCountIn, StockOut),
        (OrderPlaceIn, OrderOut),
        (CustomerIn, CustomerOut),
        (OrderItemIn, OrderItemOut),
        (DeviceIn, DeviceOut),
    ],
)
def test_every_field_an_answer_shows_is_writable_or_refused_as_read_only(given, answered):
    # A client that sends back what it read gets "read-only" for what it may not set, not
    # "unknown field" (as if it had mistyped a name it copied from our own answer).
    writable = {name for name, field in given().fields.items() if not field.read_only}
    shown = set(answered().fields)
    assert shown - writable - set(given.read_only_names) == set()


def test_api_views_validate_input_through_validated():
    # `validated` is the one way a view checks its input (it spares every request the copy of
    # the serializer's fields); a view that builds `SomeIn(data=...)` itself is caught here.
    root = Path(__file__).resolve().parents[3]
    modules = list(root.glob("*/apis.py")) + list((root / "okada").glob("**/apis.py"))
    assert len(modules) >= 4
    built_by_hand = [
        f"{path.relative_to(root)}:{n}"
        for path in modules
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "(data=" in line or ".is_valid(" in line
    ]
    assert built_by_hand == []


# --- Refusals kept in no language (validated_or_texts) -----------------------------------------


def test_validated_or_texts_keeps_each_message_as_its_msgid_and_parameters_nested_too():
    """Raised in French, each message is the msgid its field raised it from, with the values it
    was formatted with; shown, it reads as the API answers in each language."""
    body = {**ORDER, "items": [ORDER["items"][0], {"product": "x", "quantity": 0}], "address": "x" * 501}
    with translation.override("fr"):
        data, texts = validated_or_texts(OrderPlaceIn, body)
        _kind, french = outcome(OrderPlaceIn, body)
    assert data == {}
    assert texts["address"] == [
        Text.braced("Ensure this field has no more than {max_length} characters.", max_length=500)
    ]
    assert texts["items.1.quantity"] == [
        Text.braced("Ensure this value is greater than or equal to {min_value}.", min_value=1)
    ]
    assert texts["items.1.product"] == [Text("Must be a valid UUID.")]
    with translation.override("fr"):
        assert [str(t) for t in texts["address"]] == french["address"]
        assert [str(t) for t in texts["items.1.quantity"]] == french["items"][1]["quantity"]
    with translation.override("en"):
        assert [Text.load(t.stored).render() for t in texts["address"]] == [
            "The number of characters in this field must not exceed 500."
        ]


def test_validated_or_texts_answers_the_validated_data_of_good_input():
    with translation.override("fr"):
        data, texts = validated_or_texts(OrderPlaceIn, ORDER)
    assert texts == {}
    assert data == validated(OrderPlaceIn, ORDER)


def test_a_message_the_field_does_not_list_is_kept_as_its_words():
    class Shelf(serializers.Serializer[Any]):
        n = serializers.IntegerField()

        def validate_n(self, value: int) -> int:
            raise serializers.ValidationError(f"{value} is odd")

    with translation.override("fr"):
        _data, texts = validated_or_texts(Shelf, {"n": 3})
    assert texts == {"n": [Text("3 is odd")]}
    assert error_text(None, ErrorDetail("x", code="max_length")) == Text("x")
