"""Profile API requests in-process: where one request's time goes, without HTTP or gunicorn.

    python -m bench.profile list --preset large      # a vendor's product list (page of 50)
    python -m bench.profile search --preset large    # full-text search (q= a common word)
    python -m bench.profile ping                     # the minimal DRF view (/bench/ping)
    python -m bench.profile zones --preset large     # the delivery zones (GET /api/v1/zones)
    python -m bench.profile order                    # POST /api/v1/orders (the api_orders marketplace)
    ... --requests 300 --html var/profile-list.html  # more requests; pyinstrument's HTML page

A child process runs the WSGI application with the settings `make bench` serves (production,
DEBUG off, JSON logs to /dev/null), sends the same requests `bench/api.py` sends (warm-up first),
and prints the mean wall time per request, the SQL statements per request as PostgreSQL counted
them (pg_stat_statements: BEGIN, COMMIT and savepoints included) and pyinstrument's call tree.
The list figures read the kept seeded database of `--preset`; the order figure a scratch copy of
the api_orders marketplace, dropped afterwards (kept for the next run with `--keep`).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
import uuid
from typing import Any
from urllib.parse import quote

REQUESTS = 200
WARMUP = 30
# Statements per request, each with its mean time (savepoint names folded into one).
STATEMENTS = """
    SELECT sum(calls), sum(total_exec_time) / sum(calls),
           regexp_replace(query, '"s[0-9]+_x[0-9]+"', 'sN') AS q
      FROM pg_stat_statements
     WHERE toplevel AND query NOT LIKE '%%pg_stat_statements%%'
       AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
     GROUP BY q ORDER BY 1 DESC, q
"""
OWN_CODE = r"/(okada|catalog|orders)/|execute|render|compress"


def _environ(method: str, path: str, body: bytes | None, headers: dict[str, str]) -> dict[str, Any]:
    """A WSGI environ like gunicorn's for one request."""
    path, _, query = path.partition("?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body or b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if body is not None:
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in headers.items():
        if name.lower() == "content-type":
            environ["CONTENT_TYPE"] = value
        else:
            environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return lambda data: None


def _redis_commands(since: dict[str, int] | None = None) -> dict[str, int]:
    """Commands the Redis server ran, by name (INFO commandstats); with `since`, the difference.
    The private Redis of the worktree serves only this process while it runs."""
    import redis
    from django.conf import settings

    stats = redis.Redis.from_url(settings.REDIS_URL).info("commandstats")
    now = {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}
    if since is None:
        return now
    return {name: n - since.get(name, 0) for name, n in now.items() if n - since.get(name, 0) > 0}


def _child(database_url: str, requests: list[Any], count: int, html: str | None, queue: Any) -> None:
    try:
        os.environ.update(
            DATABASE_URL=database_url,
            DJANGO_SETTINGS_MODULE="bench.api_settings",
            SECRET_KEY="profile-" + uuid.uuid4().hex * 2,
            ALLOWED_HOSTS="127.0.0.1",
            DJANGO_SECURE_SSL_REDIRECT="0",
            OKADA_API_RATE_LIMIT="100000000/minute",
            OKADA_LOG_FORMAT="json",
        )
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (the access log goes nowhere, as under load)
        import psycopg
        from django.core.wsgi import get_wsgi_application
        from pyinstrument import Profiler

        application = get_wsgi_application()
        import logging

        for handler in logging.getLogger().handlers:  # the handlers were made before the redirect
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(sys.stderr)
        statuses: dict[int, int] = {}

        def send(i: int) -> None:
            method, path, body, headers = requests[i % len(requests)]
            if "Idempotency-Key" in headers:
                headers = {**headers, "Idempotency-Key": uuid.uuid4().hex}
            result = application(_environ(method, path, body, headers), _start_response)
            b"".join(result)
            result.close()  # request_finished: what gunicorn does after each answer
            status = int(getattr(result, "status_code", 0))
            statuses[status] = statuses.get(status, 0) + 1

        for i in range(WARMUP):
            send(i)
        with psycopg.connect(database_url, autocommit=True) as stats:
            stats.execute("SELECT pg_stat_statements_reset()")
            redis_before = _redis_commands()
            started, cpu_started = time.perf_counter(), time.process_time()
            for i in range(count):
                send(WARMUP + i)
            plain = (time.perf_counter() - started) / count * 1000
            cpu = (time.process_time() - cpu_started) / count * 1000
            redis_commands = _redis_commands(since=redis_before)
            # calls of every statement but the two this connection makes
            # What the requests sent (top level: not the statements run inside functions and
            # triggers), savepoints under one name; other databases of the server are left out.
            rows = stats.execute(STATEMENTS).fetchall()
        calls = sum(int(n) for n, _, _ in rows)
        statements = [(int(n) / count, ms, " ".join(q.split())[:140]) for n, ms, q in rows]
        profiler = Profiler(interval=0.0002)
        profiler.start()
        for i in range(count):
            send(WARMUP + count + i)
        profiler.stop()
        flat = ""
        if os.environ.get("PROFILE_FLAT"):  # cProfile's flat table too: time spent in each function
            import cProfile
            import pstats

            # CPU time of this process only (time.process_time): waits for PostgreSQL and Redis
            # count as nothing, so the table says where Python itself spends.
            flat_profile = cProfile.Profile(time.process_time)
            flat_profile.enable()
            for i in range(count):
                send(WARMUP + 2 * count + i)
            flat_profile.disable()
            if os.environ.get("PROFILE_DUMP"):  # for pstats' callers/callees: python -m pstats FILE
                flat_profile.dump_stats(os.environ["PROFILE_DUMP"])
            out = io.StringIO()
            table = pstats.Stats(flat_profile, stream=out)
            table.sort_stats("tottime").print_stats(30)
            table.sort_stats("cumulative").print_stats(OWN_CODE, 40)
            flat = out.getvalue()
        if html:
            with open(html, "w") as page:
                page.write(profiler.output_html())
        queue.put(
            {
                "ms": plain,
                "cpu_ms": cpu,
                "redis": {name: n / count for name, n in sorted(redis_commands.items())},
                "statements": calls / count,
                "statement_list": statements,
                "statuses": statuses,
                "flat": flat,
                "text": profiler.output_text(
                    unicode=True, color=False, show_all=bool(os.environ.get("PROFILE_ALL"))
                ),
            }
        )
    except BaseException as exc:
        queue.put({"crash": f"{type(exc).__name__}: {exc}"})
        raise


def _run_child(database_url: str, requests: list[Any], count: int, html: str | None) -> dict[str, Any]:
    from . import isolated

    queue = isolated.CONTEXT.Queue()
    process = isolated.CONTEXT.Process(target=_child, args=(database_url, requests, count, html, queue))
    process.start()
    result = queue.get()
    process.join()
    if "crash" in result:
        raise RuntimeError(result["crash"])
    return result


def _seeded(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM orders_order").fetchone()
    except psycopg.Error:
        return False
    return bool(row and row[0])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("ping", "list", "search", "zones", "order"))
    parser.add_argument("--preset", default="medium", choices=("small", "medium", "large"))
    parser.add_argument("--requests", type=int, default=REQUESTS)
    parser.add_argument("--html", help="write pyinstrument's HTML page here too")
    parser.add_argument(
        "--keep", action="store_true", help="order: keep the seeded marketplace for the next run (reuse it)"
    )
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "okada.settings.local")
    import django

    django.setup()
    from . import api, isolated, kept, orders, pgbench

    def log(message: str) -> None:
        print(f"[profile] {message}", file=sys.stderr, flush=True)

    if args.what == "order":
        name = "okada_bench_profile_orders"
        url = pgbench.server_url(name)
        if args.keep and _seeded(url):
            # A copy kept by older code: bring its schema up to this checkout's.
            pgbench.manage("migrate", "--noinput", "-v0", database_url=url)
        else:
            pgbench.drop_database(name)
            pgbench._admin(f'CREATE DATABASE "{name}"')
            pgbench.manage("migrate", "--noinput", "-v0", database_url=url)
            log("seeding the api_orders marketplace")
            pgbench.manage("seed_demo", *orders.CATALOG, *orders.CATALOG_MONTHS, "-v0", database_url=url)
        try:
            hot = isolated.call(url, orders._stock_up)
            catalog = isolated.call(url, api._storefront_catalog)
            result = _run_child(url, api._order_requests(catalog, hot, seed=1), args.requests, args.html)
        finally:
            if not args.keep:
                pgbench.drop_database(name)
    else:
        url = kept.seeded_database(args.preset, log=log)
        keys = isolated.call(url, api._issue_keys, api.LIST_VENDORS)
        try:
            if args.what == "ping":
                paths = ["/bench/ping"]
            elif args.what == "list":
                paths = ["/api/v1/products?limit=50"]
            elif args.what == "zones":
                paths = ["/api/v1/zones"]
            else:
                paths = [f"/api/v1/products?limit=50&q={quote(t)}" for t in api.SEARCH_TERMS]
            requests = [
                ("GET", path, None, {"Authorization": f"Bearer {secret}"})
                for path in paths
                for _, secret in keys
            ]
            result = _run_child(url, requests, args.requests, args.html)
        finally:
            api._delete_keys(url, [k for k, _ in keys])
    print(result["text"])
    print(result["flat"])
    print("per request  mean ms  statement")
    for per_request, ms, query in result["statement_list"]:
        print(f"{per_request:11.2f}  {ms:7.3f}  {query}")
    redis_calls = ", ".join(f"{k} {v:.2f}" for k, v in result["redis"].items() if v >= 0.005)
    print("Redis commands per request:", redis_calls or "none")
    print(
        f"{args.what}: {result['ms']:.2f} ms per request (unprofiled, in-process), "
        f"of which {result['cpu_ms']:.2f} ms CPU of this process, "
        f"{result['statements']:.1f} SQL statements per request, statuses {result['statuses']}"
    )


if __name__ == "__main__":
    main()
