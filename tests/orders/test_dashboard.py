"""The orders panels of the operations dashboard: the refunds owed (Finance's follow-up)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from okada.core.actors import Actor
from okada.core.roles import FINANCE, STOCK
from orders.models import Payment
from orders.services import payment_refund_settle
from tests.catalog.factories import role_user
from tests.orders.factories import payment_needing_refund

pytestmark = pytest.mark.django_db


def panels(client) -> dict:
    response = client.get("/admin/")
    assert response.status_code == 200
    return {p.key: p for p in response.context["okada_panels"]}


def test_refunds_owed_shows_the_count_and_the_oldest_each_linked_to_its_payments(client):
    oldest = payment_needing_refund(key="cash-old")
    # Asked for five days ago, flagged three days ago: it has waited three days.
    now = timezone.now()
    Payment.objects.filter(pk=oldest.pk).update(
        created_at=now - timedelta(days=5), refund_flagged_at=now - timedelta(days=3)
    )
    newer = payment_needing_refund(key="cash-new")
    settled = payment_needing_refund(key="cash-settled")
    payment_refund_settle(payment=settled, actor=Actor.system("test"), note="rendu")
    client.force_login(role_user(FINANCE))

    shown = panels(client)["orders.refunds_owed"]

    assert not shown.failed
    data = shown.data
    assert data["count"] == 2
    assert [r["payment"].pk for r in data["rows"]] == [oldest.pk, newer.pk]
    assert [r["days"] for r in data["rows"]] == [3, 0]
    listed = client.get(data["url"]).context["cl"].result_list
    assert {p.pk for p in listed} == {oldest.pk, newer.pk}
    assert [p.pk for p in client.get(data["rows"][0]["url"]).context["cl"].result_list] == [oldest.pk]
    page = client.get("/admin/").content.decode()
    assert "Remboursements dus" in page and oldest.order.number in page


def test_refunds_owed_is_for_those_who_see_payments(client):
    payment_needing_refund()
    client.force_login(role_user(STOCK))
    assert "orders.refunds_owed" not in panels(client)
