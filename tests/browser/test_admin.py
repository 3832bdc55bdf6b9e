"""The operations admin in a real browser, as staff use it."""

from __future__ import annotations

import re

import pytest

from catalog.models import Product, Stock
from catalog.services import product_update
from okada.core.roles import OPERATIONS, SUPPORT
from orders.models import Order, OrderStatus
from tests.catalog.factories import ProductFactory, VendorFactory, role_user, staff_actor
from tests.orders.factories import CustomerFactory, OrderFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def log_in(page, *roles: str) -> None:
    user = role_user(*roles)
    page.goto("/admin/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "pw")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/admin/$"))


def post_from_page(page, url: str, data: dict[str, str]) -> int:
    """A POST the page does not offer, sent from it with its session and CSRF token (forged)."""
    return page.evaluate(
        """async ([url, data]) => {
            const token = document.cookie.split('; ').find(c => c.startsWith('csrftoken=')).split('=')[1];
            const body = new URLSearchParams({...data, csrfmiddlewaretoken: token});
            const response = await fetch(url, {method: 'POST', body, redirect: 'manual'});
            return response.status;
        }""",
        [url, data],
    )


def test_operations_find_an_order_by_phone_move_it_twice_and_see_the_events(page):
    customer = CustomerFactory(name="Mireille Ebogo", phone="+237690112233")
    order = OrderFactory(customer=customer)
    OrderFactory()
    log_in(page, OPERATIONS)
    page.goto("/admin/orders/order/")
    page.fill("input[name=q]", "6 90 11 22 33")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"q=6"))
    page.get_by_role("link", name=order.number).click()
    page.click("button[data-to=accepted]")
    page.wait_for_selector("text=est maintenant")
    page.click("button[data-to=preparing]")
    page.wait_for_selector("text=est maintenant")
    timeline = page.inner_text("#timeline")
    assert "ACCEPTÉE" in timeline.upper() and "EN PRÉPARATION" in timeline.upper()
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PREPARING


def test_operations_soft_delete_a_product_restore_it_and_see_the_history_diff(page):
    product = ProductFactory(name="Savon de Marseille")
    log_in(page, OPERATIONS)
    page.goto(f"/admin/catalog/product/{product.pk}/delete/")
    page.get_by_role("button", name="Oui, je suis sûr").click()
    page.wait_for_url(re.compile(r"/admin/catalog/product/$"))
    assert Product.deleted_objects.filter(pk=product.pk).exists()

    page.goto("/admin/catalog/product/?deleted=deleted")
    page.check(f"input[name=_selected_action][value='{product.pk}']")
    page.select_option("select[name=action]", "restore_selected")
    page.click("button[name=index]")
    page.wait_for_selector("text=1 élément restauré")
    assert Product.objects.filter(pk=product.pk).exists()

    page.goto(f"/admin/catalog/product/{product.pk}/history/")
    history = page.inner_text("#change-history")
    assert "produit restauré" in history and "produit supprimé" in history
    assert "supprimé le" in history and "version" in history  # the field diffs of delete and restore


def test_stock_adjusted_on_the_product_page_shows_in_the_ledger(page):
    product = ProductFactory(initial_stock=4)
    log_in(page, OPERATIONS)
    page.goto(f"/admin/catalog/product/{product.pk}/change/")
    page.fill("#id_adjust-delta", "6")
    page.fill("#id_adjust-reason", "livraison du grossiste")
    page.click("#adjust-stock button[type=submit]")
    page.wait_for_selector("#ledger >> text=livraison du grossiste")
    assert page.inner_text("#stock-on-hand") == "10"
    assert Stock.objects.get(product=product).on_hand == 10


def test_support_cannot_cancel_and_a_view_only_user_cannot_revert_from_history(page):
    order = OrderFactory()
    product = ProductFactory(name="Avant")
    first = product.history.earliest()
    product_update(product=product, data={"name": "Après"}, actor=staff_actor())
    log_in(page, SUPPORT)
    page.goto(f"/admin/orders/order/{order.pk}/change/")
    assert page.locator("#cancel-order").count() == 0
    assert page.locator("#add-note").count() == 1
    status = post_from_page(
        page, f"/admin/orders/order/{order.pk}/transition/", {"to": "cancelled", "note": "x"}
    )
    assert status == 403
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING

    history = order.history.earliest()
    page.goto(f"/admin/orders/order/{order.pk}/history/{history.history_id}/")
    assert post_from_page(page, f"/admin/orders/order/{order.pk}/history/{history.history_id}/", {}) == 403
    url = f"/admin/catalog/product/{product.pk}/history/{first.history_id}/"
    assert (
        post_from_page(page, url, {"name": "Avant"}) in (403, 302)
        and Product.objects.get(pk=product.pk).name == "Après"
    )


ENGLISH = re.compile(
    r"\b(Order|Orders|Status|Payment|Customer|Vendor|Items?|Events?|History|Save|Delete|Search|Filters?|"
    r"pending|accepted|preparing|delivered|cancelled|unpaid|paid|placed|Timeline|Move|Cancel|Add|"
    r"Subtotal|Delivery|Address|Channel|Quantity|Price|Amount|Provider|Change|View|Home|Refund|Stuck)\b"
)


def test_switching_language_leaves_no_english_on_the_order_page(page):
    order = OrderFactory(vendor=VendorFactory(name="Épicerie Nkolbisson"))
    log_in(page, OPERATIONS)
    page.goto(f"/admin/orders/order/{order.pk}/change/")
    page.click("#okada-language button")  # to English
    page.wait_for_selector("html[lang=en]")
    assert "Timeline" in page.inner_text("body")
    page.click("#okada-language button")  # back to French
    page.wait_for_selector("html[lang=fr]")
    text = page.locator("body").inner_text()
    text = text.replace("English", "")  # the switch names the other language in that language
    assert ENGLISH.findall(text) == [], text
