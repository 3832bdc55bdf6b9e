"""Structured logs (okada.core.logs): what a request's and a task's lines carry, as JSON."""

from __future__ import annotations

import json
import logging.config
import re
from typing import Any

import pytest
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
