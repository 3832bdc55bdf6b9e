"""Stock-outs on the health page and in /metrics."""

from __future__ import annotations

import pytest

from catalog import health, selectors
from tests.catalog.factories import ProductFactory

pytestmark = pytest.mark.django_db


def test_stock_outs_count_live_active_products_with_nothing_left_to_sell():
    empty = ProductFactory(initial_stock=0)
    ProductFactory(initial_stock=3)
    ProductFactory(initial_stock=0, is_active=False)
    deleted = ProductFactory(initial_stock=0)
    deleted.delete()
    assert selectors.stock_out_count() == 1
    assert [s.product_id for s in selectors.stock_outs()] == [empty.pk]
    assert health.stock_metrics()[0].samples == [({}, 1)]
