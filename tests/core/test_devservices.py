"""The private services script, run for real in a scratch var/ directory."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "okada" / "devservices.py"


def services(var: Path, command: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["OKADA_VAR_DIR"] = str(var)
    return subprocess.run(
        [sys.executable, str(SCRIPT), command], env=env, capture_output=True, text=True, timeout=180
    )


def env_file(var: Path) -> dict[str, str]:
    lines = (var / "services.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


@pytest.fixture
def scratch_var():
    # Under the repository (not /tmp/pytest-of-root, mode 700): the postgres user must reach it.
    var = ROOT / "var" / f"test-services-{uuid.uuid4().hex[:8]}"
    var.mkdir(parents=True)
    yield var
    services(var, "down")
    shutil.rmtree(var, ignore_errors=True)


def test_up_is_idempotent_survives_taken_ports_and_crashes_and_keeps_data(scratch_var):
    # Hold the ports the services would use, so they must move to free ones.
    held = [socket.socket(), socket.socket()]
    for s in held:
        s.bind(("127.0.0.1", 0))
        s.listen()
    pg_port, redis_port = (s.getsockname()[1] for s in held)
    (scratch_var / "services.env").write_text(f"OKADA_PG_PORT={pg_port}\nOKADA_REDIS_PORT={redis_port}\n")
    try:
        first = services(scratch_var, "up")
    finally:
        for s in held:
            s.close()
    assert first.returncode == 0, first.stderr
    urls = env_file(scratch_var)
    assert f"port {pg_port} is taken" in first.stdout
    assert f"port {redis_port} is taken" in first.stdout
    assert f":{pg_port}/" not in urls["DATABASE_URL"]

    with psycopg.connect(urls["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (v int)")
        conn.execute("INSERT INTO kept VALUES (42)")
        checksums = conn.execute("SHOW data_checksums").fetchall()[0][0]
        preload = conn.execute("SHOW shared_preload_libraries").fetchall()[0][0]
        listen = conn.execute("SHOW listen_addresses").fetchall()[0][0]
    assert checksums == "on"
    assert "pg_stat_statements" in preload
    assert listen == "127.0.0.1"

    again = services(scratch_var, "up")
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout
    assert env_file(scratch_var) == urls

    # Crash both: SIGKILL leaves a stale Redis pid file and a PostgreSQL cluster needing recovery.
    redis_pid = int((scratch_var / "redis" / "redis.pid").read_text())
    pg_pid = int((scratch_var / "pg" / "data" / "postmaster.pid").read_text().splitlines()[0])
    os.kill(redis_pid, signal.SIGKILL)
    os.kill(pg_pid, signal.SIGKILL)

    recovered = services(scratch_var, "up")
    assert recovered.returncode == 0, recovered.stderr
    urls = env_file(scratch_var)
    with psycopg.connect(urls["DATABASE_URL"]) as conn:
        assert conn.execute("SELECT v FROM kept").fetchall()[0][0] == 42
    assert redis.Redis.from_url(urls["REDIS_URL"]).ping()

    down = services(scratch_var, "down")
    assert down.returncode == 0, down.stderr
    assert services(scratch_var, "down").returncode == 0  # idempotent
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(urls["DATABASE_URL"], connect_timeout=2)
