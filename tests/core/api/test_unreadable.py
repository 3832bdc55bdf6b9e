"""Requests gunicorn refuses before Django reads them are answered in problem+json, not HTML.

A real gunicorn (okada/gunicorn.conf.py, production settings) on a free port, fed raw bytes: the
requests no HTTP client library would send.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import select
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path

import pytest
from django.db import connection

from okada.core.api.unreadable import problem_bytes

ROOT = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _send(port: int, raw: bytes) -> tuple[str, dict[str, str], bytes]:
    """The answer to `raw`, read until the server closes: (status line, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(raw)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return status, headers, body


@contextlib.contextmanager
def _serve(threads: int) -> Iterator[int]:
    """A gunicorn on a free port, one worker: sync, or gthread with `threads` threads (keep-alive)."""
    port = _free_port()
    db = connection.settings_dict  # the test database's server; these requests never reach it
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "okada.settings.production",
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "SECRET_KEY": "unreadable-" + uuid.uuid4().hex * 2,
        "ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "WEB_THREADS": str(threads),
        "OKADA_API_BODY_TIMEOUT_SECONDS": "3",  # GUNICORN_TIMEOUT stays 30; room for a loaded machine
        # Callbacks reach the application, counted per address in REDIS_URL's Redis, which other
        # servers on this machine (127.0.0.1 too) may be counting in: not this test's subject.
        "OKADA_API_ANON_RATE_LIMIT": "100000/minute",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "okada/gunicorn.conf.py", "okada.wsgi"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # The worker is ready once it says so on stderr ("Booting worker"), then loads the app.
        assert process.stderr is not None
        for line in process.stderr:
            if b"Booting worker" in line:
                break
        else:
            pytest.fail(f"gunicorn exited ({process.wait()}) before booting a worker")
        # post_worker_init runs after the application is loaded: the first answer waits for it.
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def gunicorn() -> Iterator[int]:
    with _serve(threads=1) as port:
        yield port


@pytest.fixture(scope="module")
def gthread() -> Iterator[int]:
    with _serve(threads=4) as port:
        yield port


@pytest.fixture(params=["sync", "gthread"])
def server(request: pytest.FixtureRequest) -> int:
    """Each worker kind of okada/gunicorn.conf.py: sync (closes every connection after its
    answer), gthread (WEB_THREADS > 1: keeps connections open for the next request)."""
    return request.getfixturevalue("gunicorn" if request.param == "sync" else "gthread")


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"NOT A REQUEST LINE\r\n\r\n", 400, "unreadable_request"),
        (
            b"GET /api/v1/products HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header Name: x\r\n\r\n",
            400,
            "unreadable_request",
        ),
        (
            b"GET /api/v1/products?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            414,
            "uri_too_long",
        ),
        (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n", 431, "headers_too_large"),
        (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: tea\r\n\r\n", 417, "expectation_failed"),
        (
            b"POST /api/v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: brotli\r\n\r\n",
            501,
            "transfer_coding_not_implemented",
        ),
    ],
)
def test_a_request_gunicorn_cannot_read_is_a_problem_json_answer(gunicorn, raw, status, code):
    line, headers, body = _send(gunicorn, raw)
    assert line.strip() == f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"
    assert headers["content-type"] == "application/problem+json"
    assert int(headers["content-length"]) == len(body)
    problem = json.loads(body)
    assert problem["status"] == status
    assert problem["code"] == code
    assert problem["type"] == f"urn:okada:problem:{code}"
    # Headers unread: the default language (LANGUAGE_CODE is French), gunicorn's reason quoted.
    assert problem["title"] and problem["detail"]
    assert "(" in problem["detail"]


CALLBACK_BODY = b'{"reference": "mtn_momo-5f1c2a9e0b7d4c3a8e21", "status": "failed"}'


def _callback(length: int, body: bytes) -> bytes:
    """A payment callback (its signature is computed over the body, read before any credential)
    announcing `length` bytes of body and carrying `body`."""
    return (
        b"POST /api/v1/payments/callbacks/mtn_momo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nAccept-Language: en\r\nX-Signature: sha256=00\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (length, body)
    )


def test_a_body_shorter_than_its_content_length_is_a_408_not_a_worker_killed_as_a_500(gunicorn):
    # The worker waited for the missing bytes until gunicorn killed it (GUNICORN_TIMEOUT): a 500.
    line, headers, body = _send(gunicorn, _callback(len(CALLBACK_BODY) + 40, CALLBACK_BODY))
    assert line.strip() == "HTTP/1.1 408 Request Timeout"
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert (problem["status"], problem["code"]) == (408, "request_timeout")
    assert problem["title"] == "Request timeout"
    assert problem["detail"] == "The request body did not arrive in time: send the request again."
    # The same worker (WEB_CONCURRENCY=1) answers the next request: it was not killed.
    line, _, body = _send(gunicorn, _callback(len(CALLBACK_BODY), CALLBACK_BODY))
    assert line.strip() == "HTTP/1.1 401 Unauthorized"  # read whole, then its signature checked
    assert json.loads(body)["code"] == "invalid_signature"


def _send_and_close(port: int, raw: bytes) -> tuple[bytes, bytes]:
    """The answer to `raw` sent by a client that then closes its side: (head, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def test_a_body_cut_short_by_the_client_closing_is_a_400_never_read_as_whole(gunicorn):
    # Whole JSON, with 20 bytes announced that never come: it was read as the whole body.
    head, body = _send_and_close(gunicorn, _callback(len(CALLBACK_BODY) + 20, CALLBACK_BODY))
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 400 Bad Request"
    problem = json.loads(body)
    assert problem["code"] == "unreadable_request"
    assert "Content-Length" in problem["detail"]


def test_a_chunked_body_is_read_whole_under_gunicorn(gunicorn):
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(CALLBACK_BODY), CALLBACK_BODY)
    raw = _callback(0, b"").replace(b"Content-Length: 0", b"Transfer-Encoding: chunked") + chunked
    line, _, body = _send(gunicorn, raw)
    assert line.strip() == "HTTP/1.1 401 Unauthorized"
    assert json.loads(body)["code"] == "invalid_signature"


def test_the_message_is_in_the_default_language(gunicorn):
    _, _, body = _send(gunicorn, b"NOT A REQUEST LINE\r\n\r\n")
    problem = json.loads(body)
    assert problem["title"] == "Requête incorrecte"
    assert problem["detail"].startswith("La requête HTTP est illisible.")
    assert "Invalid" in problem["detail"]  # gunicorn's own reason, verbatim


def test_a_status_we_have_no_error_for_is_a_500_with_its_own_phrase():
    # gunicorn's reason goes with gunicorn's status; the line must carry ours.
    head, _, body = problem_bytes(405, "Method Not Allowed", "odd").partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 500 Internal Server Error"
    assert json.loads(body)["status"] == 500


def test_a_worker_puts_the_loaded_application_out_of_the_garbage_collectors_sight():
    # Full collections in a worker walk only what requests made, not the ~140k objects loaded.
    import runpy

    from gunicorn import util

    hooks = runpy.run_path(str(ROOT / "okada" / "gunicorn.conf.py"))
    gc.unfreeze()
    write_error = util.write_error
    try:
        hooks["post_worker_init"](None)
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
        util.write_error = write_error


@pytest.mark.parametrize(
    "chunked",
    [
        b"zz\r\n" + CALLBACK_BODY + b"\r\n0\r\n\r\n",  # a chunk size that is no number
        b"%x\r\n%s\r\n" % (len(CALLBACK_BODY) + 40, CALLBACK_BODY),  # cut short: the client closes
    ],
)
def test_a_chunked_body_that_cannot_be_read_is_a_400_not_a_500(gunicorn, chunked):
    # The API reads a chunked body itself: gunicorn's refusals of it reached Django as a 500.
    raw = _callback(0, b"").replace(b"Content-Length: 0", b"Transfer-Encoding: chunked") + chunked
    head, body = _send_and_close(gunicorn, raw)
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 400 Bad Request"
    assert json.loads(body)["code"] == "unreadable_request"


def _answers(data: bytes) -> list[tuple[str, dict[str, str], bytes]]:
    """Every answer in `data` (what a connection carried until the server closed it)."""
    answers = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        status, *lines = head.decode("latin-1").split("\r\n")
        headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
        length = int(headers["content-length"])
        answers.append((status, headers, rest[:length]))
        data = rest[length:]
    return answers


def _post_products(length: int, authorization: str | None) -> bytes:
    return (
        b"POST /api/v1/products HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Accept-Language: en\r\n%sContent-Length: %d\r\n\r\n"
        % (b"Authorization: %s\r\n" % authorization.encode() if authorization else b"", length)
    )


@pytest.mark.parametrize("authorization", [None, "Basic abc", "Bearer"])
def test_a_request_without_a_credential_is_a_401_before_its_body_is_sent(server, authorization):
    # The API read the whole body first (up to the cap, for up to the body deadline): here none
    # comes, so the answer was the deadline's 408. Now the 401 comes with the body still unsent,
    # and the connection is closed: the unread body is never read as the next request.
    with socket.create_connection(("127.0.0.1", server), timeout=30) as sock:
        sock.sendall(_post_products(100_000, authorization))
        data = b""
        while chunk := sock.recv(65536):  # until the server closes, no byte of the body sent
            data += chunk
    [(line, headers, body)] = _answers(data)
    assert line.strip() == "HTTP/1.1 401 Unauthorized"
    assert headers["connection"] == "close"
    assert headers["content-type"] == "application/problem+json"
    assert headers["www-authenticate"] == 'Bearer realm="api"'
    problem = json.loads(body)
    assert (problem["status"], problem["code"]) == (401, "not_authenticated")


def test_a_body_left_unread_is_never_taken_for_the_next_request(server):
    # A body that is itself a request: on a kept-alive connection, unread, it would be served.
    smuggled = b"GET /api/v1/nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server), timeout=30) as sock:
        sock.sendall(_post_products(len(smuggled), None) + smuggled)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    [(line, headers, _)] = _answers(data)
    assert line.strip() == "HTTP/1.1 401 Unauthorized"
    assert headers["connection"] == "close"


def test_a_body_trickled_past_the_deadline_is_a_408_at_the_deadline(server):
    # One byte every quarter second, each well within a socket read's timeout: gunicorn's read of
    # the body went on recv after recv, each with the whole time left, so the 3 s deadline never
    # came (the worker would have been killed at GUNICORN_TIMEOUT). The answer must come while the
    # body is still being sent (all of it takes 20 s).
    body = b"x" * 80
    with socket.create_connection(("127.0.0.1", server), timeout=30) as sock:
        sock.sendall(_callback(len(body), b""))
        sent = 0
        while sent < len(body) and not select.select([sock], [], [], 0.25)[0]:
            sock.sendall(body[sent : sent + 1])
            sent += 1
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    [(line, headers, answer)] = _answers(data)
    assert line.strip() == "HTTP/1.1 408 Request Timeout"
    assert json.loads(answer)["code"] == "request_timeout"
    assert headers["connection"] == "close"
    assert sent < len(body)


def test_a_body_read_whole_leaves_a_gthread_connection_open_for_the_next_request(gthread):
    # Only an answer that leaves its body unread closes the connection: kept-alive otherwise.
    following = b"GET /api/v1/nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", gthread), timeout=30) as sock:
        sock.sendall(_callback(len(CALLBACK_BODY), CALLBACK_BODY) + following)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    (first, first_headers, first_body), (second, _, second_body) = _answers(data)
    assert first.strip() == "HTTP/1.1 401 Unauthorized"  # read whole, then its signature checked
    assert json.loads(first_body)["code"] == "invalid_signature"
    assert first_headers["connection"] == "keep-alive"
    assert second.strip() == "HTTP/1.1 404 Not Found"
    assert json.loads(second_body)["code"] == "not_found"
