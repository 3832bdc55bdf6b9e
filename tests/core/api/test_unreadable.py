"""Requests gunicorn refuses before Django reads them are answered in problem+json, not HTML.

A real gunicorn (okada/gunicorn.conf.py, production settings) on a free port, fed raw bytes: the
requests no HTTP client library would send.
"""

from __future__ import annotations

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


@pytest.fixture(scope="module")
def gunicorn() -> Iterator[int]:
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


def test_a_body_trickled_past_the_deadline_is_a_408_at_the_deadline(gunicorn):
    # One byte every quarter second, each well within a socket read's timeout: gunicorn's read of
    # the body went on recv after recv, each with the whole time left, so the 3 s deadline never
    # came (a slower trickle held the worker until GUNICORN_TIMEOUT killed it). The answer must
    # come while the body is still being sent (all of it takes 20 s).
    body = b"x" * 80
    with socket.create_connection(("127.0.0.1", gunicorn), timeout=30) as sock:
        sock.sendall(_callback(len(body), b""))
        sent = 0
        while sent < len(body) and not select.select([sock], [], [], 0.25)[0]:
            sock.sendall(body[sent : sent + 1])
            sent += 1
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, answer = data.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 408 Request Timeout"
    assert json.loads(answer)["code"] == "request_timeout"
    assert sent < len(body)


def test_a_large_body_without_a_credential_gets_its_401_not_a_reset(gunicorn):
    # A client that reads the answer only once it has sent its body (Python's http.client, a
    # proxy forwarding a buffered request) must get the 401 that says what to do: answered before
    # the body was read, the connection was closed under a client still sending (a reset, a 502
    # from nginx) once the body outgrew the socket buffers.
    body = b'{"sku": "' + b"x" * 1_000_000 + b'"}'  # under the 2 MB cap
    head = (
        b"POST /api/v1/products HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Accept-Language: en\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    with socket.socket() as sock:
        # A small send buffer, as a client on a slow link has: the body is still being sent
        # when a server that does not read it answers and closes.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
        sock.settimeout(30)
        sock.connect(("127.0.0.1", gunicorn))
        sock.sendall(head + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status, _, answer = data.partition(b"\r\n\r\n")
    line = status.split(b"\r\n")[0].decode()
    assert line.strip() == "HTTP/1.1 401 Unauthorized"
    assert json.loads(answer)["code"] == "not_authenticated"
