"""bench/admin_sweep.py, the by-hand sweep of every admin page: it creates and deletes users, so
it refuses the kept bench databases; its --help needs neither settings nor a database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sweep(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.admin_sweep", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_help_needs_no_settings():
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL")}
    done = sweep("--help", env=env)
    assert done.returncode == 0, done.stderr
    assert "--roles" in done.stdout and "COPY of a seeded database" in done.stdout


def test_it_refuses_a_kept_bench_database_before_writing_anything():
    url = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/okada_bench_kept_large"
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "okada.settings.local"}
    done = sweep("--roles", "superuser", env=env)
    assert done.returncode == 2
    assert "okada_bench_kept_large is a kept bench database: sweep a copy" in done.stderr
