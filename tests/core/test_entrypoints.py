"""Deploy entry points (okada/wsgi.py, asgi.py, celery.py, manage.py, the Procfile), run as a
server runs them: in a process of their own, with only the environment they are given."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Each entry point, made to load the settings and say which module it got.
LOADERS = {
    "okada.wsgi": "import okada.wsgi; from django.conf import settings; print(settings.SETTINGS_MODULE)",
    "okada.asgi": "import okada.asgi; from django.conf import settings; print(settings.SETTINGS_MODULE)",
    "okada.celery": (
        "from okada.celery import app; app.conf.broker_url; "
        "from django.conf import settings; print(settings.SETTINGS_MODULE)"
    ),
}


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -c code` in the repository, with the deploy variables removed and `env` added."""
    base = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "SECRET_KEY")}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("module", sorted(LOADERS))
def test_server_entry_point_without_settings_module_fails_closed_on_a_missing_secret_key(module):
    result = run_python(LOADERS[module])
    assert result.returncode != 0, result.stdout
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY" in result.stderr


@pytest.mark.parametrize("module", sorted(LOADERS))
def test_server_entry_point_defaults_to_the_production_settings(module):
    result = run_python(LOADERS[module], SECRET_KEY="x" * 60, ALLOWED_HOSTS="okada.cm")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["okada.settings.production"]


def test_manage_py_keeps_the_local_settings_by_default():
    result = run_python(
        "import sys; sys.argv = ['manage.py', 'shell', '-c', "
        "'from django.conf import settings; print(settings.SETTINGS_MODULE)']; "
        "import runpy; runpy.run_path('manage.py', run_name='__main__')"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "okada.settings.local"


def procfile() -> dict[str, str]:
    lines = (ROOT / "okada" / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_make_run_worker_starts_with_the_local_settings_without_any_deploy_variable():
    """`make run` starts the Procfile's worker with no DJANGO_SETTINGS_MODULE or SECRET_KEY set:
    the Procfile must choose the local settings itself, or the worker fails closed."""
    command = procfile()["worker"] + " --pool solo --without-mingle --without-gossip"
    base = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "SECRET_KEY")}
    # Through a shell, as honcho runs Procfile lines.
    worker = subprocess.Popen(
        ["/bin/sh", "-c", command],
        cwd=ROOT,
        env=base,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    try:
        deadline = time.monotonic() + 90
        assert worker.stdout is not None
        while time.monotonic() < deadline:
            line = worker.stdout.readline()
            if not line:
                break  # the worker exited
            output.append(line)
            if " ready." in line:
                break
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(30)
    text = "".join(output)
    assert any(" ready." in line for line in output), f"{shlex.quote(command)} did not start:\n{text}"
    assert "ImproperlyConfigured" not in text


@pytest.mark.parametrize("process", ["worker", "beat"])
@pytest.mark.parametrize(
    ("given", "used"),
    [(None, "okada.settings.local"), ("okada.settings.production", "okada.settings.production")],
)
def test_make_run_worker_and_beat_use_the_settings_module_of_the_environment(process, given, used):
    """DESIGN §7: settings come from the environment. `make run` with production settings chosen
    ran web on them but the worker and beat on the local ones (the Procfile fixed them)."""
    assignments = procfile()[process].split(" .venv/bin/celery", 1)[0]
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    if given:
        env["DJANGO_SETTINGS_MODULE"] = given
    probe = f"{assignments} /bin/sh -c 'echo $DJANGO_SETTINGS_MODULE'"
    result = subprocess.run(["/bin/sh", "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == used
