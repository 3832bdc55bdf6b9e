"""The REST API over HTTP, served by gunicorn with the production settings.

- `api_list`: a vendor's product list (a cursor page of 50) and full-text search, at concurrency
  8, against a minimal DRF view (`/bench/ping`: no auth, no database) on the same server in the
  same run; median and p95 latency and requests per second. The database is the kept seeded one
  of the preset (`bench.kept.seeded_database`); one API key per sampled vendor is issued for the
  run and deleted afterwards. The query count of a page is measured at limit 1 and 200. Also
  measured, with no goal: the storefront's search of the whole marketplace (a storefront key,
  no `vendor`) in the orderings a shopper picks.
- `api_orders`: `POST /api/v1/orders` with a storefront key and an Idempotency-Key on every
  request, from 16 processes, against pgbench TPC-B on the same PostgreSQL, taking turns as
  bench/orders.py does (the same small seeded marketplace, the same audits). Where the time goes:
  CPU seconds per order of the gunicorn workers (Python), PostgreSQL and Redis.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg

from . import isolated, kept, orders, pgbench
from .report import Figure, at_least, at_most

ROOT = Path(__file__).resolve().parent.parent
LIST_VENDORS = 8
SEARCH_TERMS = ("riz", "huile", "plantain", "savon", "lait", "sucre", "poivre", "farine", "eau", "bière")
STOREFRONT_ORDERINGS = ("-updated_at", "price_xaf", "-price_xaf", "name")
ORDER_ROUNDS = orders.ROUNDS

# --- The server ---------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def gunicorn(database_url: str, *, workers: int, threads: int, log: Any) -> Iterator[tuple[str, int, int]]:
    """gunicorn with the production settings (+ the /bench/ping view) on a free local port;
    yields (host, port, master pid). Rate limits are set out of reach: the bench measures speed."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "bench.api_settings",
        "SECRET_KEY": "bench-" + uuid.uuid4().hex * 2,
        "ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "OKADA_API_RATE_LIMIT": "100000000/minute",
        "OKADA_LOG_FORMAT": "json",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": str(workers),
        "WEB_THREADS": str(threads),
        "GUNICORN_MAX_REQUESTS": "0",  # no worker recycled mid-run: its CPU would be lost
    }
    logfile = open(ROOT / "var" / "bench-gunicorn.log", "ab")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "okada/gunicorn.conf.py",
            "--log-level",
            "warning",
            "okada.wsgi",
        ],
        cwd=ROOT,
        env=env,
        stdout=logfile,
        stderr=logfile,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({process.returncode}): see var/bench-gunicorn.log")
            try:
                if _get("127.0.0.1", port, "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not answer within 60 s")
            time.sleep(0.2)
        kind = f"gthread workers x {threads} threads" if threads > 1 else "sync workers"
        log(f"gunicorn: {workers} {kind} on 127.0.0.1:{port} (production settings)")
        yield "127.0.0.1", port, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        logfile.close()


def _get(host: str, port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (Linux /proc), in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def _postgres_pids() -> list[int]:
    """The server's processes (postmaster and its children), when it runs on this machine."""
    with psycopg.connect(pgbench.server_url("postgres"), autocommit=True) as conn:
        row = conn.execute("SHOW data_directory").fetchone()
    try:
        postmaster = int(Path(str(row[0] if row else ""), "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    return [postmaster, *_children(postmaster)]


def _postgres_cpu() -> float:
    """CPU seconds PostgreSQL has used so far: its live processes' own, plus what the postmaster
    counts for the children it reaped (cutime + cstime), so that a backend that ended (Django
    closes a connection older than CONN_MAX_AGE; pgbench's clients disconnect at the end of a run)
    still counts in full."""
    pids = _postgres_pids()
    if not pids:
        return 0.0
    try:
        fields = Path(f"/proc/{pids[0]}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return _cpu_seconds(pids)
    return _cpu_seconds(pids) + (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def _postgres_cpu_used() -> Iterator[list[float]]:
    """The CPU seconds PostgreSQL's processes used inside the block, in the list yielded (one
    value, set on exit)."""
    start = _postgres_cpu()
    used = [0.0]
    try:
        yield used
    finally:
        used[0] = _postgres_cpu() - start


def _redis_cpu() -> float:
    import redis
    from django.conf import settings

    info = redis.Redis.from_url(settings.REDIS_URL).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


# --- Load generators (spawned processes) -------------------------------------------------------------


class _Connection:
    """A keep-alive HTTP/1.1 client made to cost the load generator as little CPU as possible
    (http.client parses every header with the email package: on this 2-core machine that was CPU
    taken from the server). Sends prepared bytes; reads the status line, Content-Length and the
    body; reconnects when the server closes the connection (gunicorn's sync workers always do)."""

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        self.sock: socket.socket | None = None
        self.buffer = b""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock, self.buffer = None, b""

    def _recv(self, sock: socket.socket) -> bytes:
        data = sock.recv(262144)
        if not data:
            raise ConnectionError("the server closed the connection")
        return data

    def request(self, raw: bytes) -> int:
        """Send one request, read its whole answer; its status (0 when the exchange failed)."""
        for attempt in (1, 2):  # a kept connection the server closed meanwhile: once more
            fresh = self.sock is None
            try:
                if self.sock is None:
                    self.sock = socket.create_connection(self.address, timeout=60)
                    self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock = self.sock
                sock.sendall(raw)
                while b"\r\n\r\n" not in self.buffer:
                    self.buffer += self._recv(sock)
                head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                status = int(lines[0].split(b" ", 2)[1])
                length, close = 0, False
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"connection" and value.strip().lower() == b"close":
                        close = True
                while len(self.buffer) < length:
                    self.buffer += self._recv(sock)
                self.buffer = self.buffer[length:]
                if close:
                    self.close()
                return status
            except (OSError, ValueError, IndexError):
                self.close()
                if fresh or attempt == 2:
                    return 0
        return 0


def _raw_request(host: str, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def _load(
    host: str,
    port: int,
    requests: list[tuple[str, str, bytes | None, dict[str, str]]],
    seconds: float,
    start: Any,
    queue: Any,
) -> None:
    """Send requests (cycling through `requests`) for `seconds`; report statuses and latencies."""
    try:
        conn = _Connection(host, port)
        # Prepared once; a request with an Idempotency-Key gets a fresh key each time it is sent.
        prepared = [
            (None, _raw_request(host, m, p, b, h))
            if "Idempotency-Key" not in h
            else ((m, p, b, {k: v for k, v in h.items() if k != "Idempotency-Key"}), b"")
            for m, p, b, h in requests
        ]
        statuses: dict[int, int] = {}
        latencies: list[float] = []
        cpu_before = time.process_time()
        start.wait(timeout=600)
        started = time.monotonic()
        deadline = started + seconds
        i = 0
        while time.monotonic() < deadline:
            fresh, raw = prepared[i % len(prepared)]
            i += 1
            if fresh is not None:
                method, path, body, headers = fresh
                raw = _raw_request(host, method, path, body, {**headers, "Idempotency-Key": uuid.uuid4().hex})
            t0 = time.perf_counter()
            status = conn.request(raw)
            latencies.append((time.perf_counter() - t0) * 1000)
            statuses[status] = statuses.get(status, 0) + 1
        conn.close()
        queue.put(
            {
                "statuses": statuses,
                "latencies": latencies,
                "elapsed": time.monotonic() - started,
                "cpu": time.process_time() - cpu_before,
            }
        )
    except BaseException as exc:
        queue.put({"crash": f"{type(exc).__name__}: {exc}"})
        start.abort()
        raise


def _drive(host: str, port: int, per_client: list[list[Any]], seconds: float) -> dict[str, Any]:
    """Run one load process per entry of `per_client`, all starting together."""
    ctx = isolated.CONTEXT
    start = ctx.Barrier(len(per_client) + 1)
    queue = ctx.Queue()
    processes = [
        ctx.Process(target=_load, args=(host, port, requests, seconds, start, queue), daemon=True)
        for requests in per_client
    ]
    for p in processes:
        p.start()
    try:
        orders._cross(start, queue)
        results = [queue.get(timeout=seconds + 120) for _ in processes]
    finally:
        for p in processes:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    crashed = [r["crash"] for r in results if "crash" in r]
    if crashed:
        raise RuntimeError(f"a load process failed: {crashed[0]}")
    latencies = sorted(ms for r in results for ms in r["latencies"])
    statuses: dict[int, int] = {}
    for r in results:
        for status, n in r["statuses"].items():
            statuses[status] = statuses.get(status, 0) + n
    elapsed = max(r["elapsed"] for r in results)
    return {
        "statuses": statuses,
        "requests": len(latencies),
        "elapsed": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) if latencies else 0.0,
        "p95_ms": latencies[int(len(latencies) * 0.95)] if latencies else 0.0,
        "client_cpu": sum(r["cpu"] for r in results),
    }


def _drive_measured(
    host: str, port: int, per_client: list[list[Any]], seconds: float, web: list[int]
) -> dict[str, Any]:
    """`_drive`, with the CPU each part used per request (ms): gunicorn (master and workers),
    PostgreSQL (every backend), Redis and the load generator."""
    before = (_cpu_seconds(web), _redis_cpu())
    with _postgres_cpu_used() as pg:
        result = _drive(host, port, per_client, seconds)
    web_cpu, redis_cpu = _cpu_seconds(web), _redis_cpu()
    per = 1000 / max(result["requests"], 1)
    result["cpu_ms"] = {
        "gunicorn": (web_cpu - before[0]) * per,
        "PostgreSQL": pg[0] * per,
        "Redis": (redis_cpu - before[1]) * per,
        "load generator": result["client_cpu"] * per,
    }
    return result


# --- api_list --------------------------------------------------------------------------------------------


def _issue_keys(count: int) -> list[tuple[str, str]]:
    """(key id, secret) for `count` vendors with products, then one storefront key (in the bench
    database's process)."""
    from catalog.models import Vendor
    from okada.core.actors import Actor
    from okada.credentials.services import api_key_issue

    vendors = Vendor.objects.filter(products__isnull=False).distinct().order_by("slug")[:count]
    actor = Actor(role=Actor.STAFF, label="bench")
    issued = [api_key_issue(name="bench", vendor=v, scopes=["products:read"], actor=actor) for v in vendors]
    issued.append(api_key_issue(name="bench storefront search", scopes=["products:read"], actor=actor))
    return [(str(i.key.pk), i.secret) for i in issued]


def _page_queries(secret: str) -> dict[int, int]:
    """Queries made by one list page at limit 1 and 200 (test client, same code as the server)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {secret}")
    client.get("/api/v1/products?limit=1")
    counts = {}
    for limit in (1, 200):
        with CaptureQueriesContext(connection) as queries:
            status = client.get(f"/api/v1/products?limit={limit}").status_code
        if status != 200:
            raise RuntimeError(f"the product list answered {status}")
        counts[limit] = len(queries)
    return counts


def _delete_keys(url: str, ids: list[str]) -> None:
    """Leave the kept database as it was: the bench's keys go."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM credentials_apikey WHERE id = ANY(%s::uuid[])", [ids])


def run_list(
    *, preset: str, clients: int, seconds: int, workers: int, threads: int, log: Any
) -> list[Figure]:
    url = kept.seeded_database(preset, log=log)
    issued = isolated.call(url, _issue_keys, LIST_VENDORS)
    keys, storefront = issued[:-1], issued[-1][1]
    try:
        queries = isolated.call(url, _page_queries, keys[0][1])
        with gunicorn(url, workers=workers, threads=threads, log=log) as (host, port, master):
            rng = random.Random(7)

            def requests(path_of: Any) -> list[list[Any]]:
                return [
                    [
                        ("GET", path_of(rng), None, {"Authorization": f"Bearer {rng.choice(keys)[1]}"})
                        for _ in range(200)
                    ]
                    for _ in range(clients)
                ]

            ping: list[list[Any]] = [[("GET", "/bench/ping", None, {})] for _ in range(clients)]
            warm = requests(lambda r: "/api/v1/products?limit=50")
            _drive(host, port, warm, 2)  # workers import, connect and cache before timing
            web = [master, *_children(master)]
            log(f"api_list: {seconds} s each of ping, list and search, {clients} clients")
            baseline = _drive_measured(host, port, ping, seconds, web)
            listing = _drive_measured(
                host, port, requests(lambda r: "/api/v1/products?limit=50"), seconds, web
            )
            search = _drive_measured(
                host,
                port,
                requests(lambda r: f"/api/v1/products?limit=50&q={quote(r.choice(SEARCH_TERMS))}"),
                seconds,
                web,
            )
            # The storefront's search of the whole marketplace, in the orderings a shopper picks
            # (catalog.selectors.SEARCH_WALK): no goal of the issue, measured to see it move.
            shopper = [
                [
                    (
                        "GET",
                        f"/api/v1/products?limit=50&q={quote(rng.choice(SEARCH_TERMS))}"
                        f"&ordering={rng.choice(STOREFRONT_ORDERINGS)}",
                        None,
                        {"Authorization": f"Bearer {storefront}"},
                    )
                    for _ in range(200)
                ]
                for _ in range(clients)
            ]
            marketplace = _drive_measured(host, port, shopper, seconds, web)
    finally:
        _delete_keys(url, [k for k, _ in issued])
    label = f"({preset})"
    runs = (listing, search, marketplace)
    errors = sum(n for run in runs for s, n in run["statuses"].items() if s != 200)
    base = f"minimal DRF view c{clients}"
    return [
        Figure(f"api product list {label}", listing["rps"], "req/s", base, baseline["rps"]),
        Figure("  list latency p50", listing["p50_ms"], "ms", "ping p50", baseline["p50_ms"]),
        Figure(
            "  list latency p95",
            listing["p95_ms"],
            "ms",
            "ping p95",
            baseline["p95_ms"],
            "<= 20 ms",
            at_most(20),
        ),
        Figure(f"api product search {label}", search["rps"], "req/s", base, baseline["rps"]),
        Figure("  search latency p50", search["p50_ms"], "ms", "ping p50", baseline["p50_ms"]),
        Figure(
            "  search latency p95",
            search["p95_ms"],
            "ms",
            "ping p95",
            baseline["p95_ms"],
            "<= 40 ms",
            at_most(40),
        ),
        Figure(f"api storefront search {label}", marketplace["rps"], "req/s", base, baseline["rps"]),
        Figure(
            "  storefront search latency p50", marketplace["p50_ms"], "ms", "ping p50", baseline["p50_ms"]
        ),
        Figure(
            "  storefront search latency p95", marketplace["p95_ms"], "ms", "ping p95", baseline["p95_ms"]
        ),
        *(
            Figure(
                f"  {name} CPU per request: {part}",
                run["cpu_ms"][part],
                "ms",
                f"ping: {part}" if ping_cpu is not None else "",
                ping_cpu,
            )
            for name, run in (("list", listing), ("search", search))
            for part, ping_cpu in (
                ("gunicorn", baseline["cpu_ms"]["gunicorn"]),
                ("PostgreSQL", None),
                ("Redis", None),
                ("load generator", baseline["cpu_ms"]["load generator"]),
            )
        ),
        Figure("  non-200 answers", errors, "req", goal="= 0", check=at_most(0)),
        Figure(
            "  queries per page, limit 200",
            queries[200],
            "queries",
            "limit 1",
            queries[1],
            f"= {queries[1]}",
            lambda f: f.value == f.baseline_value,
        ),
    ]


# --- api_orders ------------------------------------------------------------------------------------------


def _storefront_catalog() -> dict[str, Any]:
    """What the storefront processes send: a storefront key, products per shop, customers, zones."""
    from catalog.models import Product, Vendor
    from okada.core.actors import Actor
    from okada.credentials.services import api_key_issue
    from orders.models import Customer

    shops = orders._shops()
    vendors = {v.pk: v.city for v in Vendor.objects.filter(pk__in=shops)}
    products: dict[str, list[str]] = {}
    for pk, vendor_id in Product.objects.orderable().filter(vendor__in=shops).values_list("pk", "vendor_id"):
        products.setdefault(str(vendor_id), []).append(str(pk))
    customers: dict[str, list[tuple[str, str, str]]] = {}
    for city in set(vendors.values()):
        sample = Customer.objects.filter(zone__city=city).order_by("pk")[: orders.CUSTOMERS_PER_CITY]
        customers[city] = [(c.phone, c.name, str(c.zone_id)) for c in sample]
    secret = api_key_issue(name="bench storefront", actor=Actor(role=Actor.STAFF, label="bench")).secret
    return {
        "secret": secret,
        "vendors": {str(pk): city for pk, city in vendors.items()},
        "products": products,
        "customers": customers,
    }


def _order_requests(catalog: dict[str, Any], hot: list[str], seed: int, count: int = 400) -> list[Any]:
    rng = random.Random(seed)
    vendors = [v for v in catalog["vendors"] if catalog["products"].get(v)]
    hot_by_vendor: dict[str, list[str]] = {}
    for vendor, products in catalog["products"].items():
        hot_by_vendor[vendor] = [p for p in products if p in hot]
    headers = {
        "Authorization": f"Bearer {catalog['secret']}",
        "Content-Type": "application/json",
        "Idempotency-Key": "",  # a fresh one per request (see _load)
    }
    requests = []
    for _ in range(count):
        vendor = rng.choice(vendors)
        shelf = [p for p in catalog["products"][vendor] if p not in hot]
        items = rng.sample(shelf, rng.randint(1, min(3, len(shelf))))
        if hot_by_vendor[vendor] and rng.random() < orders.HOT_SHARE:
            items.append(rng.choice(hot_by_vendor[vendor]))
        phone, name, zone = rng.choice(catalog["customers"][catalog["vendors"][vendor]])
        body = {
            "vendor": vendor,
            "customer": {"phone": phone, "name": name},
            "items": [{"product": p, "quantity": rng.randint(1, 3)} for p in items],
            "payment_method": rng.choice(("mtn_momo", "orange_money", "cash")),
            "address": "Akwa, près du marché",
            "zone": zone,
        }
        requests.append(("POST", "/api/v1/orders", json.dumps(body).encode(), headers))
    return requests


def run_orders(*, clients: int, seconds: int, workers: int, threads: int, log: Any) -> list[Figure]:
    per_round = max(2, round(seconds / ORDER_ROUNDS))
    with pgbench.scratch_database(orders.DATABASE) as url:
        log(f"api_orders: seeding {orders.DATABASE} ({' '.join(orders.CATALOG)})")
        pgbench.manage("seed_demo", *orders.CATALOG, *orders.CATALOG_MONTHS, "-v0", database_url=url)
        hot = isolated.call(url, orders._stock_up)
        catalog = isolated.call(url, _storefront_catalog)
        orders_before = orders._counts(url, orders=orders.ORDERS)["orders"]
        per_client = [_order_requests(catalog, hot, seed=n) for n in range(clients)]
        pgbench.pgbench_init(10)
        try:
            with gunicorn(url, workers=workers, threads=threads, log=log) as (host, port, master):
                _drive(host, port, per_client, 2)  # warm up (these orders count in the audits)
                warm_orders = orders._counts(url, orders=orders.ORDERS)["orders"] - orders_before
                web_pids = [master, *_children(master)]
                rounds, ratios, tps, ceilings = [], [], [], []
                ping_errors = 0
                ping: list[list[Any]] = [[("GET", "/bench/ping", None, {})] for _ in range(clients)]
                cpu = {"web": 0.0, "postgres": 0.0, "redis": 0.0, "clients": 0.0}
                pgbench_cpu, pgbench_transactions = 0.0, 0
                ping_cpu = {"web": 0.0, "clients": 0.0, "requests": 0}
                log(
                    f"api_orders vs pgbench (-c {clients} -j 2): "
                    f"{ORDER_ROUNDS} rounds of {per_round} s, taking turns"
                )
                for number in range(1, ORDER_ROUNDS + 1):
                    pgbench.checkpoint()
                    with _postgres_cpu_used() as pg:
                        baseline = pgbench.pgbench_run(clients=clients, jobs=2, seconds=per_round)
                    pgbench_cpu += pg[0]
                    pgbench_transactions += baseline.transactions
                    pgbench.checkpoint()
                    before = (_cpu_seconds(web_pids), _redis_cpu())
                    with _postgres_cpu_used() as pg:
                        result = _drive(host, port, per_client, per_round)
                    after = (_cpu_seconds(web_pids), _redis_cpu())
                    cpu["postgres"] += pg[0]
                    for name, b, a in zip(("web", "redis"), before, after, strict=True):
                        cpu[name] += a - b
                    cpu["clients"] += result["client_cpu"]
                    done = result["statuses"].get(201, 0) + result["statuses"].get(409, 0)
                    rate = done / result["elapsed"]
                    rounds.append(result)
                    ratios.append(rate / baseline.tps)
                    tps.append(baseline.tps)
                    # The ceiling of any endpoint on this stack: the minimal DRF view (no
                    # credential, no database) at the same concurrency, in the same round.
                    web_before = _cpu_seconds(web_pids)
                    pinged = _drive(host, port, ping, per_round)
                    ping_cpu["web"] += _cpu_seconds(web_pids) - web_before
                    ping_cpu["clients"] += pinged["client_cpu"]
                    ping_cpu["requests"] += pinged["requests"]
                    ceilings.append(pinged["rps"] / baseline.tps)
                    ping_errors += sum(n for s, n in pinged["statuses"].items() if s != 200)
                    log(
                        f"  round {number}: pgbench {baseline.tps:,.0f} tps, "
                        f"API {rate:,.0f} orders/s (ratio {ratios[-1]:.2f}; "
                        f"minimal DRF view {ceilings[-1]:.2f})"
                    )
        finally:
            pgbench.drop_database(pgbench.PGBENCH_DB)
        audit = orders._audit(url)
    placed = sum(r["statuses"].get(201, 0) for r in rounds)
    refused = sum(r["statuses"].get(409, 0) for r in rounds)
    errors = sum(n for r in rounds for s, n in r["statuses"].items() if s not in (201, 409))
    elapsed = sum(r["elapsed"] for r in rounds)
    latencies = sorted(r["p95_ms"] for r in rounds)
    median = statistics.median(ratios)
    per_order = lambda seconds: seconds / max(placed + refused, 1) * 1000  # noqa: E731 (ms of CPU per order)
    per_ping = lambda seconds: seconds / max(ping_cpu["requests"], 1) * 1000  # noqa: E731 (ms per view request)
    return [
        Figure(
            "api order placement (HTTP)",
            (placed + refused) / elapsed,
            "orders/s",
            f"pgbench tpcb-like c{clients}",
            sum(tps) / len(tps),
            "reported: all rounds",
        ),
        Figure(
            "  ratio per round: median",
            median,
            f"(rounds {min(ratios):.2f} to {max(ratios):.2f})",
            goal=">= 0.30",
            check=at_least(0.30),
        ),
        # Any endpoint on this stack is slower than a view that does nothing: the goal's reach.
        Figure(
            "  minimal DRF view / pgbench: median",
            statistics.median(ceilings),
            f"(rounds {min(ceilings):.2f} to {max(ceilings):.2f})",
        ),
        Figure("  minimal DRF view non-200 answers", ping_errors, "req", goal="= 0", check=at_most(0)),
        Figure("  of which placed (201)", placed / elapsed, "orders/s"),
        Figure("  of which refused out of stock (409)", refused / elapsed, "orders/s"),
        Figure("  errors (other statuses)", errors, "req", goal="= 0", check=at_most(0)),
        Figure("  latency p50 (median of rounds)", statistics.median(r["p50_ms"] for r in rounds), "ms"),
        Figure("  latency p95 (worst round)", latencies[-1], "ms"),
        Figure(
            "  CPU per order: gunicorn (Python)",
            per_order(cpu["web"]),
            "ms",
            "minimal DRF view",
            per_ping(ping_cpu["web"]),
        ),
        Figure(
            "  CPU per order: PostgreSQL",
            per_order(cpu["postgres"]),
            "ms",
            "pgbench transaction",
            pgbench_cpu / max(pgbench_transactions, 1) * 1000,  # ms of PostgreSQL's CPU each
        ),
        Figure("  CPU per order: Redis", per_order(cpu["redis"]), "ms"),
        Figure(
            "  CPU per order: load generator",
            per_order(cpu["clients"]),
            "ms",
            "minimal DRF view",
            per_ping(ping_cpu["clients"]),
        ),
        Figure("oversold stock rows (api)", audit["oversold"], "rows", goal="= 0", check=at_most(0)),
        Figure("stock != ledger (api)", audit["ledger_mismatch"], "products", goal="= 0", check=at_most(0)),
        Figure(
            "reserved != open order items (api)",
            audit["reservation_mismatch"],
            "products",
            goal="= 0",
            check=at_most(0),
        ),
        Figure(
            "orders lost or extra (api)",
            abs(audit["orders"] - orders_before - warm_orders - placed),
            "orders",
            goal="= 0",
            check=at_most(0),
        ),
    ]


def run(
    *,
    only: str | None,
    preset: str,
    clients: int | None,
    seconds: int,
    workers: int,
    threads: int,
    log: Any,
) -> list[Figure]:
    figures: list[Figure] = []
    if only in (None, "api", "api_list"):
        figures += run_list(
            preset=preset, clients=clients or 8, seconds=seconds, workers=workers, threads=threads, log=log
        )
    if only in (None, "api", "api_orders"):
        figures += run_orders(
            clients=clients or 16, seconds=seconds, workers=workers, threads=threads, log=log
        )
    return figures
