"""Server time of the operations admin's main pages on a seeded marketplace (`--only admin`).

A worker process (its own Django, pointed at the kept seeded database of `--preset`) logs in as
an Operations and Finance user and GETs each page `--requests` times through Django's test client: the
time measured is the server's whole handling of the request (middleware, session, permissions,
queries, template), without a network. The baseline is a minimal Django view behind the same
login, measured in the same process and run, interleaved with the pages. Goal: p95 under 150 ms
for every page, 300 ms for the Database health screens (they read PostgreSQL's catalog and
statistics: sizes of every table, every index, the statement statistics). The user, its session
and nothing else are written, and removed at the end.

    python -m bench --only admin --preset small      # quick check
    python -m bench --only admin --preset large      # the real figures (seeds once, minutes)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import kept
from .report import Figure, at_most

ROOT = Path(__file__).resolve().parent.parent
GOAL_MS = 150.0
HEALTH_GOAL_MS = 300.0  # the Database health screens (issue 15)
BASELINE = "/bench-admin-baseline/"


def run(*, preset: str, requests: int, log: Any) -> list[Figure]:
    url = kept.seeded_database(preset, log=log)
    log(f"admin pages on the {preset} marketplace, {requests} requests each")
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "okada.settings.local",
        "DJANGO_DEBUG": "0",  # no query log, no debug toolbar: as in production
    }
    done = subprocess.run(
        [sys.executable, "-m", "bench.admin", "--worker", str(requests)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"admin bench worker failed:\n{done.stderr[-3000:]}")
    results = json.loads(done.stdout.strip().splitlines()[-1])
    base = results.pop("baseline")
    figures = []
    for name, times in results.items():
        goal = HEALTH_GOAL_MS if name.startswith("health ") else GOAL_MS
        figures.append(
            Figure(
                f"admin {name} median ({preset})",
                _median(times),
                "ms",
                baseline="minimal Django view, median",
                baseline_value=_median(base),
            )
        )
        figures.append(
            Figure(
                f"admin {name} p95 ({preset})",
                _p95(times),
                "ms",
                baseline="minimal Django view, p95",
                baseline_value=_p95(base),
                goal=f"<= {goal:.0f} ms",
                check=at_most(goal),
            )
        )
    return figures


def _median(times: list[float]) -> float:
    return round(statistics.median(times), 2)


def _p95(times: list[float]) -> float:
    ordered = sorted(times)
    return round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2)


# --- The worker (runs with the seeded database's settings) --------------------------------------


def _pages() -> dict[str, str]:
    import datetime as dt
    from urllib.parse import urlencode

    from django.db.models import Max, Min
    from django.utils import timezone

    from catalog.models import Product, Vendor
    from orders.models import Order, Payment
    from sync.models import Device, SyncConflict

    order = Order.objects.order_by("-placed_at").first()
    product = Product.objects.order_by("-id").first()
    vendor = Vendor.objects.order_by("name").first()
    paid = Payment.objects.aggregate(first=Min("created_at"), last=Max("created_at"))
    if not (order and product and vendor and paid["first"]):
        raise RuntimeError("the seeded database has no orders, products, vendors or payments")
    device = Device.objects.order_by("-last_push_at").first()
    conflict = SyncConflict.objects.filter(status=SyncConflict.Status.OPEN).order_by("-created_at").first()
    if not (device and conflict):
        raise RuntimeError("the seeded database has no sync devices or open conflicts (bench.kept adds them)")
    shop = urlencode({"q": conflict.vendor.name})
    first_name, _, family_name = order.shown_customer_name.partition(" ")
    family_name = family_name or first_name
    # Days in Douala time, as the date filter reads them: the newest day, and the oldest month
    # (the changelist reads the newest rows first: the oldest month is the furthest from them).
    newest, oldest = timezone.localdate(paid["last"]), timezone.localdate(paid["first"])
    by_date = "/admin/orders/payment/?created_at_from={}&created_at_to={}"
    return {
        "dashboard": "/admin/",
        "orders list": "/admin/orders/order/",
        "orders search (phone)": f"/admin/orders/order/?q={order.customer.phone}",
        # A first name many customers share, and the beginning of a family name (the last word
        # may be a word's beginning): the shown names, through the customers' and aliases' indexes.
        "orders search (name)": "/admin/orders/order/?" + urlencode({"q": first_name}),
        "orders search (name beginning)": "/admin/orders/order/?" + urlencode({"q": family_name[:3]}),
        "orders queue": "/admin/orders/order/queue/",
        "order page": f"/admin/orders/order/{order.pk}/change/",
        "products list": "/admin/catalog/product/",
        "products search": "/admin/catalog/product/?q=riz",
        # Common words never together, and a quoted phrase of common words in an order no product
        # has: every product of the marketplace was tested (0.4 s on the large seed).
        "products search (words never together)": "/admin/catalog/product/?"
        + urlencode({"q": "bio premium"}),
        "products search (phrase)": "/admin/catalog/product/?" + urlencode({"q": '"cameroun origine"'}),
        "product page": f"/admin/catalog/product/{product.pk}/change/",
        "stock movements list": "/admin/catalog/stockmovement/",
        "order events list": "/admin/orders/orderevent/",
        "vendors list": "/admin/catalog/vendor/",
        "payments list": "/admin/orders/payment/",
        "payments by date (newest day)": by_date.format(newest, newest),
        "payments by date (oldest month)": by_date.format(oldest, oldest + dt.timedelta(days=30)),
        "vendor page": f"/admin/catalog/vendor/{vendor.pk}/change/",
        "sync devices list": "/admin/sync/device/",
        "sync conflicts list": "/admin/sync/syncconflict/",
        "sync open conflicts": "/admin/sync/syncconflict/?status__exact=open",
        # Staff look a shop's conflicts up by its name: the slowest of the list's screens before
        # (every conflict joined with the vendors, three times a page).
        "sync conflicts search (vendor)": "/admin/sync/syncconflict/?" + shop,
        "sync conflict page": f"/admin/sync/syncconflict/{conflict.pk}/change/",
        "sync mutations list": "/admin/sync/mutation/",
        "sync mutations rejected": "/admin/sync/mutation/?status__exact=rejected",
        "sync mutations of a device": f"/admin/sync/mutation/?device__id__exact={device.pk}",
        "sync mutations search (code)": "/admin/sync/mutation/?q=insufficient_stock",
        "health overview": "/admin/health/databasehealth/",
        "health queries": "/admin/health/databasehealth/queries/",
        "health activity": "/admin/health/databasehealth/activity/",
        "health storage": "/admin/health/databasehealth/storage/",
        "health indexes": "/admin/health/databasehealth/indexes/",
        "health sequences": "/admin/health/databasehealth/sequences/",
        "health connections": "/admin/health/databasehealth/connections/",
    }


def _check(response: Any, url: str) -> None:
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}")
    if b"health-unavailable" in response.content:
        raise RuntimeError(f"{url}: a section could not be read in time (statement timeout)")


def _worker(requests: int) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.decorators import login_required
    from django.contrib.auth.models import Group
    from django.http import HttpResponse
    from django.test import Client
    from django.test.utils import override_settings
    from django.urls import include, path

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]

    @login_required
    def minimal(request: Any) -> HttpResponse:
        return HttpResponse("ok")

    patterns = [path(BASELINE.strip("/") + "/", minimal), path("", include("okada.urls"))]
    urls = type("urls", (), {"urlpatterns": patterns})
    user = get_user_model().objects.create_user(
        username=f"bench-admin-{os.getpid()}",
        password="bench",  # noqa: S106 (a throwaway user, deleted below)
        is_staff=True,
    )
    try:
        user.groups.set(Group.objects.filter(name__in=["Operations", "Finance"]))  # Finance: payments
        with override_settings(ROOT_URLCONF=urls):
            client = Client()
            client.force_login(user)
            pages = _pages()
            times: dict[str, list[float]] = {name: [] for name in ["baseline", *pages]}
            for url in [BASELINE, *pages.values()]:  # warm-up: caches, plans, templates
                _check(client.get(url), url)
            for _ in range(requests):
                for name, url in [("baseline", BASELINE), *pages.items()]:
                    started = time.perf_counter()
                    response = client.get(url)
                    times[name].append((time.perf_counter() - started) * 1000)
                    _check(response, url)
            client.logout()
    finally:
        user.delete()  # its session went with client.logout()
    print(json.dumps(times))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        _worker(int(sys.argv[2]))
