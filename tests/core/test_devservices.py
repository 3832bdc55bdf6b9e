"""The private services script, run for real in a scratch var/ directory."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "okada" / "devservices.py"


def services_env(var: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["OKADA_VAR_DIR"] = str(var)
    return env


def services(var: Path, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), command],
        env=services_env(var),
        capture_output=True,
        text=True,
        timeout=180,
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


# `up` with a port check that calls `racy` free although it is taken: what happens when another
# worktree's `make up` binds a port between our check and our server's bind.
RACY_UP = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("devservices", sys.argv[1])
ds = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ds)
racy = {int(p) for p in sys.argv[2:]}
checked = ds.port_is_free
ds.port_is_free = lambda port: port in racy or checked(port)
sys.exit(ds.main(["devservices.py", "up"]))
"""


def test_a_port_taken_between_the_check_and_the_bind_moves_the_service_to_the_next_free_one(scratch_var):
    held = [socket.socket(), socket.socket()]
    for s in held:
        s.bind(("127.0.0.1", 0))
        s.listen()
    pg_port, redis_port = (s.getsockname()[1] for s in held)
    (scratch_var / "services.env").write_text(f"OKADA_PG_PORT={pg_port}\nOKADA_REDIS_PORT={redis_port}\n")
    try:
        up = subprocess.run(
            [sys.executable, "-c", RACY_UP, str(SCRIPT), str(pg_port), str(redis_port)],
            env=services_env(scratch_var),
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        for s in held:
            s.close()
    assert up.returncode == 0, up.stderr
    assert f"port {pg_port} was taken meanwhile" in up.stdout
    assert f"port {redis_port} was taken meanwhile" in up.stdout
    urls = env_file(scratch_var)
    assert urlsplit(urls["DATABASE_URL"]).port not in (pg_port, None)
    assert urlsplit(urls["REDIS_URL"]).port not in (redis_port, None)
    with psycopg.connect(urls["DATABASE_URL"]) as conn:
        assert scalar(conn, "SELECT 1") == 1
    assert redis.Redis.from_url(urls["REDIS_URL"]).ping()


def redis_servers_in(directory: Path) -> list[int]:
    """redis-server processes working in `directory` (Redis chdirs to its data directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if (
                entry.name.isdigit()
                and (entry / "comm").read_text().strip() == "redis-server"
                and os.readlink(entry / "cwd") == str(directory.resolve())
            ):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def scalar(conn: psycopg.Connection, sql: str) -> Any:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return row[0]


def secret(url: str) -> str:
    password = urlsplit(url).password
    assert password
    return password


def without_password(url: str) -> str:
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return parts._replace(netloc=f"{user}{parts.hostname}:{parts.port}").geturl()


def assert_passwords_required(urls: dict[str, str]) -> None:
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(without_password(urls["DATABASE_URL"]), connect_timeout=5)
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(without_password(urls["REDIS_URL"])).ping()
    with psycopg.connect(urls["DATABASE_URL"]) as conn:
        verifier = scalar(conn, "SELECT rolpassword FROM pg_authid WHERE rolname = 'okada'")
    assert verifier.startswith("SCRAM-SHA-256$")
    assert redis.Redis.from_url(urls["REDIS_URL"]).ping()


def test_concurrent_ups_start_one_redis_and_the_services_require_the_passwords_kept_0600(scratch_var):
    command = [sys.executable, str(SCRIPT), "up"]
    env = services_env(scratch_var)
    first, second = (
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    )
    outputs = [p.communicate(timeout=180) for p in (first, second)]
    assert first.returncode == 0, outputs[0]
    assert second.returncode == 0, outputs[1]
    assert len(redis_servers_in(scratch_var / "redis")) == 1, outputs
    assert sum("Redis started" in out for out, _ in outputs) == 1, outputs
    assert sum("PostgreSQL started" in out for out, _ in outputs) == 1, outputs

    env_path = scratch_var / "services.env"
    assert stat.S_IMODE(env_path.stat().st_mode) == 0o600
    urls = env_file(scratch_var)
    assert_passwords_required(urls)
    # The passwords never show in a command line another local user can read.
    for pid in redis_servers_in(scratch_var / "redis"):
        assert secret(urls["REDIS_URL"]) not in Path(f"/proc/{pid}/cmdline").read_text()
    # `status` prints where the services are, not their passwords.
    status = services(scratch_var, "status")
    assert "running" in status.stdout
    assert secret(urls["DATABASE_URL"]) not in status.stdout
    assert secret(urls["REDIS_URL"]) not in status.stdout

    # A later `up` keeps the same passwords, and an env file opened up by hand is closed again.
    env_path.chmod(0o644)
    again = services(scratch_var, "up")
    assert again.returncode == 0, again.stderr
    assert env_file(scratch_var) == urls
    assert stat.S_IMODE(env_path.stat().st_mode) == 0o600


def test_a_trust_cluster_and_a_redis_without_password_are_upgraded_in_place_keeping_their_data(scratch_var):
    assert services(scratch_var, "up").returncode == 0
    urls = env_file(scratch_var)
    # Put both back as the previous okada/devservices.py left them: trust for everyone, no
    # password anywhere, a Redis started without requirepass, URLs without passwords.
    with psycopg.connect(urls["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (v int)")
        conn.execute("INSERT INTO kept VALUES (42)")
        conn.execute("ALTER ROLE okada PASSWORD NULL")
        data = Path(scalar(conn, "SHOW data_directory"))
        trust = "local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n"
        (data / "pg_hba.conf").write_text(trust)  # an existing file keeps its owner
        conn.execute("SELECT pg_reload_conf()")
    redis_dir = scratch_var / "redis"
    old_redis = redis_servers_in(redis_dir)
    os.kill(old_redis[0], signal.SIGTERM)
    deadline = time.monotonic() + 30
    while redis_servers_in(redis_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not redis_servers_in(redis_dir)
    port = urlsplit(urls["REDIS_URL"]).port
    assert port
    (redis_dir / "redis.conf").unlink(missing_ok=True)
    subprocess.run(
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(redis_dir),
            "--daemonize",
            "yes",
            "--pidfile",
            str(redis_dir / "redis.pid"),
            "--logfile",
            str(redis_dir / "redis.log"),
            "--appendonly",
            "yes",
        ],
        check=True,
    )
    redis.Redis(port=port).set("kept", "yes")
    old = {k: without_password(v) for k, v in urls.items() if k.endswith("_URL")}
    old |= {k: v for k, v in urls.items() if k.endswith("_PORT")}
    (scratch_var / "services.env").write_text("".join(f"{k}={v}\n" for k, v in old.items()))
    with psycopg.connect(old["DATABASE_URL"]) as conn:  # open to anyone, as before
        assert scalar(conn, "SELECT v FROM kept") == 42
    assert redis.Redis.from_url(old["REDIS_URL"]).get("kept") == b"yes"

    upgraded = services(scratch_var, "up")
    assert upgraded.returncode == 0, upgraded.stderr
    assert "pg_hba.conf rewritten and reloaded" in upgraded.stdout
    assert "restarting Redis so that it requires a password" in upgraded.stdout
    urls = env_file(scratch_var)
    assert_passwords_required(urls)
    with psycopg.connect(urls["DATABASE_URL"]) as conn:
        assert scalar(conn, "SELECT v FROM kept") == 42
    assert redis.Redis.from_url(urls["REDIS_URL"]).get("kept") == b"yes"
    assert len(redis_servers_in(redis_dir)) == 1
    assert stat.S_IMODE((scratch_var / "services.env").stat().st_mode) == 0o600


def test_a_stale_redis_pid_of_another_program_is_never_signalled(scratch_var):
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        (scratch_var / "redis").mkdir()
        (scratch_var / "redis" / "redis.pid").write_text(f"{bystander.pid}\n")
        down = services(scratch_var, "down")
        assert down.returncode == 0, down.stderr
        assert bystander.poll() is None, "down killed a process that is not our redis-server"
        assert not (scratch_var / "redis" / "redis.pid").exists()  # stale: removed
    finally:
        bystander.kill()
        bystander.wait()


def test_up_starts_no_private_service_when_their_urls_are_given(scratch_var):
    """DESIGN.md section 7: the private PostgreSQL and Redis start only when DATABASE_URL /
    REDIS_URL are not set (CI, or a developer with servers of their own); `down` then leaves them."""
    env = services_env(scratch_var) | {
        "DATABASE_URL": "postgres://someone:secret@db.example:5432/okada",
        "REDIS_URL": "redis://cache.example:6379/0",
    }
    said = {}
    for command in ("up", "down"):
        done = subprocess.run(
            [sys.executable, str(SCRIPT), command], env=env, capture_output=True, text=True, timeout=180
        )
        assert done.returncode == 0, done.stderr
        said[command] = done.stdout
    assert "DATABASE_URL is set: not starting the private PostgreSQL" in said["up"]
    assert "REDIS_URL is set: not starting the private Redis" in said["up"]
    assert not (scratch_var / "pg").exists() and not (scratch_var / "redis").exists()
    # Nothing written for the settings to read in place of the URLs given.
    assert "DATABASE_URL" not in env_file(scratch_var) and "REDIS_URL" not in env_file(scratch_var)


def test_a_missing_server_is_named_in_one_line_with_what_to_install_when_not_root(monkeypatch, tmp_path):
    """DESIGN.md section 7: missing system programs are installed with apt-get as root; anyone
    else gets one line saying exactly what to install (and nothing is started)."""
    import importlib.util

    monkeypatch.setenv("OKADA_VAR_DIR", str(tmp_path))
    spec = importlib.util.spec_from_file_location("devservices_under_test", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "is_root", lambda: False)
    monkeypatch.setattr(module, "PG_BIN_CANDIDATES", [tmp_path / "no-postgresql" / "bin"])
    monkeypatch.delenv("DATABASE_URL", raising=False)

    def no_install(*args, **kwargs):
        raise AssertionError(f"apt-get must not run when not root: {args}")

    monkeypatch.setattr(module.subprocess, "run", no_install)
    with pytest.raises(module.ServiceError) as refused:
        module.up()
    message = str(refused.value)
    assert "\n" not in message
    assert message == (
        "PostgreSQL server >= 15 not found: install it with "
        "`sudo apt-get install -y postgresql-15 postgresql-contrib-15`"
    )
    monkeypatch.setattr(module.shutil, "which", lambda name: None)
    with pytest.raises(
        module.ServiceError,
        match=r"^redis-server not found: install it with `sudo apt-get install -y redis-server`$",
    ):
        module.redis_up({})
    assert not (tmp_path / "pg").exists() and not (tmp_path / "redis").exists()
