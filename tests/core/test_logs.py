"""Structured logs (okada.core.logs): what a request's and a task's lines carry, as JSON."""

from __future__ import annotations

import json
import logging.config
import re
import sys
import threading
from types import SimpleNamespace
from typing import Any

import pytest
import structlog
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings

from okada.core import logs
from tests.testapp.tasks import log_inside_job

pytestmark = pytest.mark.django_db


def test_a_requests_lines_carry_its_request_id_and_user(client, admin_user, capsys):
    logging.config.dictConfig(logs.logging_config("json"))
    try:
        client.force_login(admin_user)
        response = client.get("/admin/", HTTP_X_REQUEST_ID="req-health-1")
    finally:
        logging.config.dictConfig(settings.LOGGING)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    [access] = [line for line in lines if line["logger"] == "okada.access"]
    assert response["X-Request-ID"] == "req-health-1"
    assert access["request_id"] == "req-health-1"
    assert access["user"] == admin_user.username
    assert access["level"] == "info" and access["time"].endswith("Z")


def test_a_tasks_lines_carry_its_task_id_task_name_and_job(capsys):
    logging.config.dictConfig(logs.logging_config("json"))
    try:
        result = log_inside_job.apply(args=("probe.logged_job",), task_id="task-health-1")
    finally:
        logging.config.dictConfig(settings.LOGGING)
    assert result.successful()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    [line] = [line for line in lines if line["event"] == "inside the job"]
    assert line["task_id"] == "task-health-1"
    assert line["task"] == "testapp.log_inside_job"
    assert line["job"] == "probe.logged_job" and line["job_run"]


def test_nothing_of_a_task_leaks_into_the_next_lines(capsys):
    log_inside_job.apply(args=("probe.logged_job",), task_id="task-health-2")
    logging.config.dictConfig(logs.logging_config("json"))
    try:
        logging.getLogger("testapp").warning("after the task")
    finally:
        logging.config.dictConfig(settings.LOGGING)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    [line] = [line for line in lines if line["event"] == "after the task"]
    assert "task_id" not in line and "job" not in line


def test_an_unknown_log_format_is_refused():
    with pytest.raises(ImproperlyConfigured, match="json or plain"):
        logs.logging_config("xml")


@pytest.mark.parametrize("fmt", ["json", "plain"])
def test_a_refused_request_is_one_line_and_a_crash_keeps_its_traceback(fmt, client, admin_user, capsys):
    """A 404 (the caller's mistake) is logged without Django's traceback; a 500 keeps it, and the
    plain format never prints a frame's local variables (they hold secrets)."""
    client.force_login(admin_user)
    crashing = Client(raise_request_exception=False)
    logging.config.dictConfig(logs.logging_config(fmt))
    try:
        capsys.readouterr()
        assert client.get("/admin/no-such-screen/").status_code == 404
        refused = capsys.readouterr().err
        with override_settings(ROOT_URLCONF="tests.testapp.crash_urls"):
            assert crashing.get("/crash").status_code == 500
        crashed = capsys.readouterr().err
    finally:
        logging.config.dictConfig(settings.LOGGING)
    assert "Not Found" in refused
    assert "Traceback" not in refused and "exc_info" not in refused and '"exception"' not in refused
    assert "crash on purpose" in crashed
    assert ("Traceback" in crashed) if fmt == "plain" else ('"exception"' in crashed)
    assert "s3cret-in-a-frame" not in crashed  # a local variable of the crashing frame


def _logged_request(
    client: Client, capsys: pytest.CaptureFixture[str], request_id: str
) -> tuple[Any, dict[str, Any], list[dict[str, Any]]]:
    """GET /api/v1/products with `request_id` sent, JSON logs on: the response, its access-log
    line and every JSON line logged."""
    logging.config.dictConfig(logs.logging_config("json"))
    try:
        response = client.get("/api/v1/products", HTTP_X_REQUEST_ID=request_id)
    finally:
        logging.config.dictConfig(settings.LOGGING)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    [access] = [line for line in lines if line["logger"] == "okada.access"]
    return response, access, lines


@pytest.mark.parametrize(
    "sent",
    ["x" * 8000, "bad id\nwith newline", "trailing-newline\n", "", "x" * 201, "caf\u00e9", "a b"],
    ids=["8000-chars", "newline", "trailing-newline", "empty", "201-chars", "non-ascii", "space"],
)
def test_an_unreasonable_request_id_is_replaced_by_a_new_one(sent, client, capsys):
    response, access, lines = _logged_request(client, capsys, sent)
    generated = response["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated), generated  # a new one, as for a missing header
    assert access["request_id"] == generated
    assert all(line.get("request_id") in (None, generated) for line in lines)


def test_a_reasonable_request_id_is_kept(client, capsys):
    sent = "Ab0._:-" + "x" * 193  # every allowed character, 200 in all
    response, access, _ = _logged_request(client, capsys, sent)
    assert response["X-Request-ID"] == sent
    assert access["request_id"] == sent


def _records() -> list[logging.LogRecord]:
    """Standard-library records of every shape the formatter meets: arguments, extras, an
    exception, a stack, a record an earlier handler already formatted."""
    logger = logging.getLogger("okada.access")
    records = [
        logger.makeRecord("okada.access", logging.INFO, "f.py", 1, "%s %s %s", ("GET", "/p", 200), None),
        logger.makeRecord(
            "okada.access", logging.INFO, "f.py", 1, "x", (), None, extra={"status": 201, "credential": None}
        ),
        logger.makeRecord(
            "testapp", logging.WARNING, "f.py", 1, "plain", (), None, sinfo="Stack (most recent)"
        ),
    ]
    try:
        raise ValueError("boom")
    except ValueError:
        records.append(
            logger.makeRecord("testapp", logging.ERROR, "f.py", 1, "failed %d", (3,), sys.exc_info())
        )
        # An exception and a stack; a message that is no string; Celery's lines (a mapping of
        # arguments, `data`); Django's line of a refused request (its `request`, outside it); an
        # `extra` named as structlog's own mark of its events, without the other.
        info = sys.exc_info()
        records.append(
            logger.makeRecord("testapp", logging.ERROR, "f.py", 1, "both", (), info, sinfo="Stack")
        )
    records += [
        logger.makeRecord("testapp", logging.INFO, "f.py", 1, {"not": "a string"}, (), None),
        logger.makeRecord(
            "celery.app.trace",
            logging.INFO,
            "f.py",
            1,
            "Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s",
            ({"name": "backups.run_backup", "id": "t-1", "runtime": 0.5, "return_value": None},),
            None,
            extra={"data": {"id": "t-1"}},
        ),
        logger.makeRecord(
            "django.request",
            logging.WARNING,
            "f.py",
            1,
            "Not Found: %s",
            ("/x",),
            None,
            extra={"status_code": 404, "request": SimpleNamespace(id="r-1", credential=None)},
        ),
        logger.makeRecord("testapp", logging.INFO, "f.py", 1, "mark", (), None, extra={"_logger": "x"}),
    ]
    formatted = logger.makeRecord("testapp", logging.INFO, "f.py", 1, "again %s", ("x",), None)
    logging.Formatter().format(formatted)  # leaves its `message` attribute behind
    return [*records, formatted]


@pytest.mark.parametrize("fmt", ["json", "plain"])
def test_the_formatter_writes_structlogs_lines_without_copying_each_record(fmt, monkeypatch):
    # A request's access line went through a copy of its record and logging.Formatter on top of
    # structlog's processors: CPU on every request for the same text.
    config = logs.logging_config(fmt)["formatters"]["structlog"]
    ours = config["()"](processors=config["processors"], foreign_pre_chain=config["foreign_pre_chain"])
    theirs = structlog.stdlib.ProcessorFormatter(
        processors=config["processors"], foreign_pre_chain=config["foreign_pre_chain"]
    )
    copies: list[dict[str, Any]] = []
    copy = logging.makeLogRecord

    def counted_copy(attributes: dict[str, Any]) -> logging.LogRecord:
        copies.append(attributes)
        return copy(attributes)

    monkeypatch.setattr(logging, "makeLogRecord", counted_copy)

    def untimed(line: str) -> str:
        return re.sub(r"\d{4}-\d\d-\d\dT[0-9:.]+Z", "TIME", line)

    for record in _records():
        expected = untimed(theirs.format(record))
        copies.clear()
        assert untimed(ours.format(record)) == expected
        assert copies == [] or "_logger" in record.__dict__  # that one takes structlog's path, a copy


def test_a_requests_line_names_its_credential_without_rendering_it():
    # Every line of an API request read the credential's scope key with str(credential) (its
    # dataclass repr, actor included) computed as the fallback, used or not.
    class Credential:
        scope_key = "key:1"
        vendor_id = "v-1"

        def __repr__(self) -> str:
            raise AssertionError("the credential was rendered")

    token = logs._current_request.set(SimpleNamespace(credential=Credential()))
    try:
        event = logs._request_context(None, "info", {"event": "GET /api/v1/zones 200"})
    finally:
        logs._current_request.reset(token)
    assert event == {"event": "GET /api/v1/zones 200", "credential": "key:1", "vendor": "v-1"}


@pytest.mark.parametrize(
    ("path", "login"),
    [
        ("/api/v1/orders?q=677123456", False),  # a 401, logged by Django after the middleware returned
        ("/admin/no-such-screen/?q=677123456", True),  # a 404
    ],
)
def test_djangos_line_of_a_refused_request_carries_its_request_id(path, login, client, admin_user, capsys):
    # Django logs a 4xx ("Unauthorized: /api/v1/orders") outside the request's bound context:
    # the line finds its request id through the request the record holds.
    if login:
        client.force_login(admin_user)
    logging.config.dictConfig(logs.logging_config("json"))
    try:
        capsys.readouterr()
        response = client.get(path, HTTP_X_REQUEST_ID="req-refused-1")
    finally:
        logging.config.dictConfig(settings.LOGGING)
    assert response.status_code == (404 if login else 401)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    [line] = [line for line in lines if line["logger"] == "django.request"]
    assert line.get("request_id") == "req-refused-1", line
    assert line["status_code"] == response.status_code
    # The query string (a customer's phone, a name) stays out of the logs, as in the access log.
    assert "677123456" not in json.dumps(line), line
    if login:
        assert line["user"] == admin_user.username


def _carried() -> dict[str, Any]:
    """The bound values a line logged here carries (the first processor of every line)."""
    return dict(logs._merge_bound(None, "info", {}))


def test_bound_values_nest_and_leave_with_their_block_even_through_an_exception():
    with logs.bound(request_id="r-1", job=None):
        assert _carried() == {"request_id": "r-1"}
        with pytest.raises(RuntimeError), logs.bound(job="j-1", request_id="r-2"):
            assert _carried() == {"request_id": "r-2", "job": "j-1"}
            raise RuntimeError
        assert _carried() == {"request_id": "r-1"}
    assert _carried() == {}


def test_a_task_binds_only_its_own_values_and_leaves_none():
    logs._task_started(task_id="t-1", task=SimpleNamespace(name="testapp.one"))
    try:
        with logs.bound(job="j-1"):
            assert _carried() == {"task_id": "t-1", "task": "testapp.one", "job": "j-1"}
    finally:
        logs._task_finished()
    assert _carried() == {}
    logs._task_started(task_id="t-2", task=SimpleNamespace(name="testapp.two"))
    logs._task_finished()
    assert _carried() == {}


def test_a_thread_carries_none_of_its_starters_bound_values_and_leaves_none_of_its_own():
    seen: dict[str, Any] = {}

    def work() -> None:
        seen["start"] = _carried()
        with logs.bound(job="in-thread"):
            seen["inside"] = _carried()
        logs._task_started(task_id="t-3", task=None)  # left bound: the thread's own

    with logs.bound(request_id="r-1"):
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        assert _carried() == {"request_id": "r-1"}
    assert seen == {"start": {}, "inside": {"job": "in-thread"}}
    assert _carried() == {}
