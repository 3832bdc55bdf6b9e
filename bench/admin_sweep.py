"""Sweep every admin page at scale, as a superuser and as each staff role (not in `make bench`).

Every registered admin's list with each filter choice (an autocomplete filter: its first row), each
sortable column both ways, its search box (a word nothing has, "a", digits), its date hierarchy,
pages 2 and 400 (or its last), and the change, history and delete pages of its first and newest
rows; then a few custom views. Each URL is read once to warm up, then three times (once if the
warm-up took over 3 s): median time, number of SQL statements and the slowest one, one JSON line
per page. Statements time out after 20 s (a 500 then).

It creates and deletes users named `sweep-<role>-<pid>`: run it on a COPY of a seeded database
(`CREATE DATABASE x TEMPLATE okada_bench_kept_large`), never on the kept one itself:

    DATABASE_URL=postgres://.../copy DJANGO_SETTINGS_MODULE=okada.settings.local DJANGO_DEBUG=0 \
        python -m bench.admin_sweep [--roles superuser,Operations] [--models catalog.product,...] \
        [--only LABEL-SUBSTRING] [--out sweep.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

ROLES = ["superuser", "Operations", "Support", "Finance", "Stock"]
TIMEOUT = "20s"
KEPT = "okada_bench_kept_"  # bench/kept.py's databases: the sweep writes users, never there


class Capture:
    def __init__(self) -> None:
        self.queries: list[tuple[float, str]] = []

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.queries.append(((time.perf_counter() - started) * 1000, sql))


def timed(client: Any, url: str, runs: int = 3) -> dict[str, Any]:
    from django.db import connection

    started = time.perf_counter()
    first = client.get(url)  # warm-up
    if time.perf_counter() - started > 3:
        runs = 1  # a slow page: one measured run is enough to rank it
    status = first.status_code
    if status >= 500 or status in (301, 302, 400, 403, 404):
        return {"status": status, "ms": None, "queries": None, "slowest_ms": None, "slowest": ""}
    times: list[float] = []
    caps: list[Capture] = []
    for _ in range(runs):
        cap = Capture()
        with connection.execute_wrapper(cap):
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        status = max(status, response.status_code)
        caps.append(cap)
    cap = caps[len(caps) // 2]
    slow = max(cap.queries, default=(0.0, ""))
    return {
        "status": status,
        "ms": round(statistics.median(times), 1),
        "queries": len(cap.queries),
        "slowest_ms": round(slow[0], 1),
        "slowest": slow[1][:600],
    }


def user_for(role: str) -> Any:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    User = get_user_model()
    name = f"sweep-{role.lower()}-{os.getpid()}"  # two sweeps at once never share a user
    if role == "superuser":
        return User.objects.create_superuser(username=name, password="x", email="")  # noqa: S106
    user = User.objects.create_user(username=name, password="x", is_staff=True)  # noqa: S106
    user.groups.set(Group.objects.filter(name=role))
    return user


def urls_for(model_admin: Any, user: Any) -> list[tuple[str, str]]:
    """(label, url) of every page of one admin that this user may view."""
    from django.test import RequestFactory
    from django.urls import NoReverseMatch, reverse

    model = model_admin.model
    opts = model._meta
    rf = RequestFactory()
    request = rf.get("/")
    request.user = user
    if not model_admin.has_view_or_change_permission(request):
        return []
    info = (opts.app_label, opts.model_name)
    base = reverse(f"admin:{info[0]}_{info[1]}_changelist")
    out = [("list", base)]
    try:
        request.resolver_match = None
        cl = model_admin.get_changelist_instance(request)
    except Exception as exc:
        out.append((f"changelist-instance-error {exc!r}", base))
        return out
    # filters
    for spec in cl.filter_specs:
        title = str(getattr(spec, "title", spec.__class__.__name__))
        try:
            choices = list(spec.choices(cl))
        except Exception as exc:
            out.append((f"filter {title} choices error {exc!r}", base))
            continue
        n = 0
        for choice in choices:
            qs = choice.get("query_string")
            if not qs or choice.get("selected") or qs in ("?", ""):
                continue
            out.append((f"filter {title}={choice.get('display')}", base + qs))
            n += 1
            if n >= 6:
                break
        if not choices or n == 0:
            kwarg = getattr(spec, "lookup_kwarg", None)
            field = getattr(spec, "field", None)
            related = getattr(field, "related_model", None)
            if kwarg and related is not None:
                first = related._default_manager.order_by("pk").first()
                if first is not None:
                    out.append((f"filter {title}={first.pk} (autocomplete)", f"{base}?{kwarg}={first.pk}"))
                    continue
            out.append((f"filter {title} (no choices: {spec.__class__.__name__})", base))
    # sorts
    for i, field_name in enumerate(cl.list_display):
        if cl.sortable_by is not None and field_name not in cl.sortable_by:
            continue
        if field_name == "action_checkbox":
            continue
        if cl.get_ordering_field(field_name) is None:
            continue
        out.append((f"sort {field_name} asc", f"{base}?o={i}"))
        out.append((f"sort {field_name} desc", f"{base}?o=-{i}"))
    # search
    if cl.search_fields:
        out.append(("search nomatch", f"{base}?q=zzqxw"))
        out.append(("search 'a'", f"{base}?q=a"))
        out.append(("search digits", f"{base}?q=237"))
    # date hierarchy
    if cl.date_hierarchy:
        out.append(("date hierarchy 2025", f"{base}?{cl.date_hierarchy}__year=2025"))
        out.append(
            ("date hierarchy 2025-06", f"{base}?{cl.date_hierarchy}__year=2025&{cl.date_hierarchy}__month=6")
        )
    # show all / pagination
    try:
        num_pages = cl.paginator.num_pages
    except Exception:
        num_pages = None
    if isinstance(num_pages, int) and num_pages > 1 and num_pages < 10**6:
        out.append((f"last page p={num_pages}", f"{base}?p={num_pages}"))
    else:
        out.append(("page p=400", f"{base}?p=400"))
    out.append(("page p=2", f"{base}?p=2"))
    if cl.can_show_all and cl.multi_page:
        out.append(("show all", f"{base}?all="))
    # object pages
    try:
        obj = cl.queryset.order_by().first() if not opts.proxy else None
        obj_last = cl.root_queryset.order_by("-pk").first()
    except Exception as exc:
        out.append((f"object lookup error {exc!r}", base))
        obj = obj_last = None
    for tag, o in (("first", obj), ("newest", obj_last)):
        if o is None:
            continue
        pk = o.pk
        for name in ("change", "history", "delete"):
            try:
                url = reverse(f"admin:{info[0]}_{info[1]}_{name}", args=[pk])
            except NoReverseMatch:  # an admin without that page
                continue
            out.append((f"{name} ({tag})", url))
    return out


CUSTOM = [
    ("orders.order", "queue", "/admin/orders/order/queue/"),
    ("backups.backup", "back-up-now (GET)", "/admin/backups/backup/back-up-now/"),
    ("partitions.partitionedtable", "run (GET)", "/admin/partitions/partitionedtable/run/"),
    ("core", "dashboard", "/admin/"),
]


def main() -> None:
    # Arguments first: --help needs no settings nor database.
    parser = argparse.ArgumentParser(
        prog="python -m bench.admin_sweep",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--models", default="", help="app_label.model_name list, comma-separated")
    parser.add_argument("--roles", default=",".join(ROLES), help=f"comma-separated, of {', '.join(ROLES)}")
    parser.add_argument("--out", default="var/admin_sweep.jsonl", help="JSON lines appended here")
    parser.add_argument("--only", default="", help="substring of the label to keep")
    args = parser.parse_args()
    import django

    django.setup()
    from django.conf import settings
    from django.contrib import admin
    from django.db import connection
    from django.test import Client

    name = connection.settings_dict["NAME"]
    if name.startswith(KEPT):
        parser.error(f"{name} is a kept bench database: sweep a copy (CREATE DATABASE x TEMPLATE {name})")
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    wanted = {m for m in args.models.split(",") if m}
    with connection.cursor() as cursor:
        cursor.execute(f"SET statement_timeout = '{TIMEOUT}'")
    out = open(args.out, "a")  # noqa: SIM115 (appended to page by page, closed at the end)
    for role in args.roles.split(","):
        user = user_for(role)
        client = Client(raise_request_exception=False)
        client.force_login(user)
        pages: list[tuple[str, str, str]] = []
        for model, model_admin in admin.site._registry.items():
            key = f"{model._meta.app_label}.{model._meta.model_name}"
            if wanted and key not in wanted:
                continue
            for label, url in urls_for(model_admin, user):
                pages.append((key, label, url))
        for key, label, url in CUSTOM:
            if not wanted or key in wanted:
                pages.append((key, label, url))
        for key, label, url in pages:
            if args.only and args.only not in label:
                continue
            try:
                result = timed(client, url)
            except Exception as exc:
                result = {"status": "exc", "error": repr(exc)[:500]}
            row = {"role": role, "model": key, "label": label, "url": url, **result}
            print(json.dumps(row), flush=True)
            out.write(json.dumps(row) + "\n")
            out.flush()
        client.logout()
        user.delete()
    out.close()


if __name__ == "__main__":
    main()
