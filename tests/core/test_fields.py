"""okada.core.fields.any_of: the compact CHECK for choices columns."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection

from orders.models import Zone

pytestmark = pytest.mark.django_db


def test_the_check_is_stored_as_one_array_constant():
    with connection.cursor() as cur:
        cur.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'orders_zone_city_valid'"
        )
        (definition,) = cur.fetchone()
    assert "ANY ('{douala,yaounde}'::text[])" in definition
    assert "ARRAY[" not in definition


def test_model_validation_evaluates_it_like_the_database():
    Zone(name="Akwa", city="douala", delivery_fee_xaf=500).validate_constraints()
    with pytest.raises(ValidationError) as exc:
        Zone(name="Akwa", city="paris", delivery_fee_xaf=500).validate_constraints()
    assert "orders_zone_city_valid" in str(exc.value)


def test_the_database_refuses_a_value_outside_the_choices():
    with pytest.raises(IntegrityError, match="orders_zone_city_valid"), connection.cursor() as cur:
        cur.execute(
            "INSERT INTO orders_zone (id, created_at, updated_at, deleted_by_cascade, name, city,"
            " delivery_fee_xaf) VALUES (gen_random_uuid(), now(), now(), false, 'X', 'paris', 0)"
        )


@pytest.mark.parametrize("values", [[], ["a,b"], ["O'Neil"], ["{x}"], ["Douala"]])
def test_values_that_would_need_quoting_in_the_array_literal_are_refused(values):
    from okada.core.fields import any_of

    with pytest.raises(ValueError, match="any_of"):
        Zone.objects.filter(any_of("city", values)).exists()
