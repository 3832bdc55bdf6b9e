#!/usr/bin/env python3
"""Private PostgreSQL and Redis under var/ for `make run`, `make test`, `make up`/`make down`.

Standard library only: it runs before the virtualenv exists. Usage:

    python3 okada/devservices.py up       # start both (idempotent), write var/services.env
    python3 okada/devservices.py down     # stop both (idempotent)
    python3 okada/devservices.py status

When DATABASE_URL (or REDIS_URL) is set in the environment the matching private service is
neither started nor stopped: the caller brings their own.

The cluster is initialised with data checksums and pg_stat_statements preloaded, listens on
127.0.0.1 only (plus a socket under var/pg/run) and trusts local connections: it is a private
development database, never a production one. initdb refuses to run as root, so when the caller
is root the cluster belongs to the `postgres` system user.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("OKADA_VAR_DIR") or ROOT / "var").resolve()  # tests use a scratch one
PG_DIR = VAR / "pg"  # may be a symlink (see place_pg_dir), so paths below use its target
PG_DATA = PG_DIR.resolve() / "data"
PG_RUN = PG_DIR.resolve() / "run"
PG_LOG = PG_DIR.resolve() / "postgresql.log"
REDIS_DIR = VAR / "redis"
REDIS_PID = REDIS_DIR / "redis.pid"
ENV_FILE = VAR / "services.env"

PG_BIN_CANDIDATES = [Path(f"/usr/lib/postgresql/{v}/bin") for v in (17, 16, 15)]
PG_USER = "okada"  # bootstrap superuser of the private cluster
PG_DB = "okada"
DEFAULT_PG_PORT = 55432
DEFAULT_REDIS_PORT = 56379


class ServiceError(Exception):
    """A problem the user can fix; printed as one line, no traceback."""


def say(msg: str) -> None:
    print(f"[services] {msg}", flush=True)


# --- environment file -------------------------------------------------------------------------


def read_env_file() -> dict[str, str]:
    values: dict[str, str] = {}
    if ENV_FILE.exists():
        for line in ENV_FILE.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, value = line.split("=", 1)
                values[key.strip()] = value.strip()
    return values


def write_env_file(values: dict[str, str]) -> None:
    VAR.mkdir(exist_ok=True)
    lines = ["# Written by okada/devservices.py: where the private services listen."]
    lines += [f"{k}={v}" for k, v in sorted(values.items())]
    ENV_FILE.write_text("\n".join(lines) + "\n")


# --- helpers ----------------------------------------------------------------------------------


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_port(preferred: int) -> int:
    """The preferred port if free, else the next free one (a port already taken is not fatal)."""
    for port in range(preferred, preferred + 200):
        if port_is_free(port):
            if port != preferred:
                say(f"port {preferred} is taken, using {port}")
            return port
    raise ServiceError(f"no free TCP port between {preferred} and {preferred + 199} on 127.0.0.1")


def pid_alive(pid: int) -> bool:
    """True for a running process; False for a dead one or a zombie nobody reaped (containers)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def processes_working_in(directory: Path) -> list[int]:
    """Live processes whose working directory is `directory` (PostgreSQL backends chdir to PGDATA)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "cwd") == str(directory) and pid_alive(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def is_root() -> bool:
    return os.geteuid() == 0


def apt_install(packages: list[str], why: str) -> None:
    if not is_root():
        raise ServiceError(f"{why}: install it with `sudo apt-get install -y {' '.join(packages)}`")
    say(f"{why}: installing {' '.join(packages)} with apt-get ...")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", *packages], check=True, env=env, stdout=subprocess.DEVNULL
    )


def wait_until(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise ServiceError(f"{what} did not come up within {timeout:.0f}s")


def tcp_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# --- PostgreSQL -------------------------------------------------------------------------------


def pg_bin() -> Path:
    for candidate in PG_BIN_CANDIDATES:
        if (candidate / "initdb").exists() and (candidate / "postgres").exists():
            return candidate
    apt_install(["postgresql-15", "postgresql-contrib-15"], "PostgreSQL server >= 15 not found")
    for candidate in PG_BIN_CANDIDATES:
        if (candidate / "initdb").exists():
            return candidate
    raise ServiceError("PostgreSQL server >= 15 not found: install postgresql-15")


def pg_owner() -> str | None:
    """The system user that owns the cluster: `postgres` when we are root, else ourselves."""
    if not is_root():
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
    return "postgres"


def as_owner(cmd: list[str], owner: str | None) -> list[str]:
    # `env -C /`: the caller's working directory may be one the owner cannot enter.
    return ["runuser", "-u", owner, "--", "env", "-C", "/", *cmd] if owner else cmd


def owner_can_reach(owner: str, directory: Path) -> bool:
    return subprocess.run(as_owner(["test", "-x", str(directory)], owner)).returncode == 0


def place_pg_dir(owner: str) -> None:
    """When `postgres` cannot traverse the clone's path (e.g. a clone under /root), keep the
    cluster in /var/lib/okada (not /var/tmp, which tmpfiles cleans) and make var/pg a symlink
    to it, so it still lives "under var/"."""
    global PG_DATA, PG_RUN, PG_LOG
    if PG_DIR.exists() or PG_DIR.is_symlink() or owner_can_reach(owner, VAR):
        return
    target = Path("/var/lib/okada") / f"pg-{hashlib.sha256(str(PG_DIR).encode()).hexdigest()[:12]}"
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    if target.stat().st_uid not in (0, pwd.getpwnam(owner).pw_uid):
        raise ServiceError(f"{target} belongs to another user; remove it or set DATABASE_URL")
    PG_DIR.symlink_to(target, target_is_directory=True)
    PG_DATA, PG_RUN, PG_LOG = target / "data", target / "run", target / "postgresql.log"
    say(f"the `{owner}` user cannot reach {VAR}: the cluster lives in {target} (var/pg links to it)")


def prepare_pg_dirs(owner: str | None) -> None:
    VAR.mkdir(parents=True, exist_ok=True)
    if owner:
        place_pg_dir(owner)
    PG_DATA.parent.mkdir(parents=True, exist_ok=True)
    PG_RUN.mkdir(exist_ok=True)
    if owner:
        for path in (PG_DATA.parent, PG_RUN, PG_LOG):
            if path.exists():
                shutil.chown(path, owner, owner)
        if not owner_can_reach(owner, PG_RUN):
            raise ServiceError(f"the `{owner}` user cannot reach {PG_RUN}; set DATABASE_URL instead")


def pg_initdb(bindir: Path, owner: str | None) -> None:
    say(f"initialising a PostgreSQL cluster in {PG_DATA} ...")
    cmd = [
        str(bindir / "initdb"),
        "-D",
        str(PG_DATA),
        "--username",
        PG_USER,
        "--auth",
        "trust",
        "--data-checksums",
        "--encoding",
        "UTF8",
        "--locale",
        "C.UTF-8",
    ]
    subprocess.run(as_owner(cmd, owner), check=True, stdout=subprocess.DEVNULL)
    with (PG_DATA / "postgresql.conf").open("a") as conf:
        conf.write(
            "\n# okada private cluster\n"
            "listen_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{PG_RUN}'\n"
            "shared_preload_libraries = 'pg_stat_statements'\n"
            "max_connections = 300\n"
            "shared_buffers = 512MB\n"
            "max_wal_size = 4GB\n"
            "log_min_duration_statement = 2000\n"
            "timezone = 'UTC'\n"
        )


def pg_running(bindir: Path, owner: str | None) -> bool:
    status = subprocess.run(
        as_owner([str(bindir / "pg_ctl"), "status", "-D", str(PG_DATA)], owner),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return status.returncode == 0


def pg_port_from_pidfile() -> int | None:
    pidfile = PG_DATA / "postmaster.pid"
    try:
        return int(pidfile.read_text().splitlines()[3])
    except (OSError, IndexError, ValueError):
        return None


def clear_stale_pg_pidfile() -> None:
    """After a crash, postmaster.pid may name a dead (or zombie) postmaster: PostgreSQL would then
    refuse to start. Remove it, but only once no old backend still works in the data directory."""
    pidfile = PG_DATA / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().splitlines()[0])
    except (OSError, IndexError, ValueError):
        return
    if pid_alive(pid):
        return
    wait_until(lambda: not processes_working_in(PG_DATA), "old PostgreSQL processes to exit", 60)
    pidfile.unlink(missing_ok=True)
    for lock in PG_RUN.glob(".s.PGSQL.*.lock"):  # the socket lock names the same dead postmaster
        lock.unlink(missing_ok=True)
        Path(str(lock)[: -len(".lock")]).unlink(missing_ok=True)
    say("removed a stale postmaster.pid left by a crash; PostgreSQL will recover")


def pg_up(env: dict[str, str]) -> None:
    bindir = pg_bin()
    owner = pg_owner()
    prepare_pg_dirs(owner)
    clear_stale_pg_pidfile()
    if not (PG_DATA / "PG_VERSION").exists():
        if PG_DATA.exists() and any(PG_DATA.iterdir()):
            raise ServiceError(f"{PG_DATA} exists but holds no cluster; move it away and retry")
        pg_initdb(bindir, owner)
    if pg_running(bindir, owner):
        port = pg_port_from_pidfile() or int(env.get("OKADA_PG_PORT", DEFAULT_PG_PORT))
        say(f"PostgreSQL already running on 127.0.0.1:{port}")
    else:
        # pg_ctl removes a stale postmaster.pid itself and a cluster left by a crash runs recovery.
        port = pick_port(int(env.get("OKADA_PG_PORT", DEFAULT_PG_PORT)))
        cmd = [
            str(bindir / "pg_ctl"),
            "start",
            "-D",
            str(PG_DATA),
            "-l",
            str(PG_LOG),
            "-w",
            "-t",
            "120",
            "-o",
            f"-p {port}",
        ]
        result = subprocess.run(as_owner(cmd, owner), capture_output=True, text=True)
        if result.returncode != 0:
            tail = PG_LOG.read_text().splitlines()[-5:] if PG_LOG.exists() else []
            raise ServiceError("PostgreSQL failed to start: " + " | ".join(tail or [result.stderr]))
        say(f"PostgreSQL started on 127.0.0.1:{port} (log: {PG_LOG})")
    psql = [str(bindir / "psql"), "-h", str(PG_RUN), "-p", str(port), "-U", PG_USER, "-d", "postgres", "-tAc"]
    exists = subprocess.run(
        as_owner([*psql, f"SELECT 1 FROM pg_database WHERE datname='{PG_DB}'"], owner),
        capture_output=True,
        text=True,
        check=True,
    )
    if exists.stdout.strip() != "1":
        subprocess.run(
            as_owner([*psql, f'CREATE DATABASE "{PG_DB}"'], owner), check=True, stdout=subprocess.DEVNULL
        )
    env["OKADA_PG_PORT"] = str(port)
    env["DATABASE_URL"] = f"postgres://{PG_USER}@127.0.0.1:{port}/{PG_DB}"


def pg_down() -> None:
    if not (PG_DATA / "PG_VERSION").exists():
        return
    bindir = pg_bin()
    owner = pg_owner()
    if pg_running(bindir, owner):
        cmd = [str(bindir / "pg_ctl"), "stop", "-D", str(PG_DATA), "-m", "fast", "-w"]
        subprocess.run(as_owner(cmd, owner), check=True, stdout=subprocess.DEVNULL)
        say("PostgreSQL stopped")


# --- Redis ------------------------------------------------------------------------------------


def redis_pid() -> int | None:
    try:
        pid = int(REDIS_PID.read_text().strip())
    except (OSError, ValueError):
        return None
    if pid_alive(pid):
        return pid
    REDIS_PID.unlink(missing_ok=True)  # stale pid file from a crash
    return None


def redis_up(env: dict[str, str]) -> None:
    server = shutil.which("redis-server")
    if not server:
        apt_install(["redis-server"], "redis-server not found")
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    port = int(env.get("OKADA_REDIS_PORT", DEFAULT_REDIS_PORT))
    if redis_pid() and tcp_answers(port):
        say(f"Redis already running on 127.0.0.1:{port}")
    else:
        port = pick_port(port)
        subprocess.run(
            [
                server,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--dir",
                str(REDIS_DIR),
                "--daemonize",
                "yes",
                "--pidfile",
                str(REDIS_PID),
                "--logfile",
                str(REDIS_DIR / "redis.log"),
                "--appendonly",
                "yes",
                "--protected-mode",
                "yes",
            ],
            check=True,
        )
        wait_until(lambda: tcp_answers(port), "Redis")
        say(f"Redis started on 127.0.0.1:{port}")
    env["OKADA_REDIS_PORT"] = str(port)
    env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"


def redis_down() -> None:
    pid = redis_pid()
    if pid:
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not pid_alive(pid), "Redis shutdown")
        say("Redis stopped")


# --- commands ---------------------------------------------------------------------------------


def up() -> None:
    env = read_env_file()
    if os.environ.get("DATABASE_URL"):
        say("DATABASE_URL is set: not starting the private PostgreSQL")
    else:
        pg_up(env)
    if os.environ.get("REDIS_URL"):
        say("REDIS_URL is set: not starting the private Redis")
    else:
        redis_up(env)
    write_env_file(env)


def down() -> None:
    if not os.environ.get("DATABASE_URL"):
        pg_down()
    if not os.environ.get("REDIS_URL"):
        redis_down()


def status() -> None:
    env = read_env_file()
    pg = PG_DATA / "postmaster.pid"
    say(f"PostgreSQL: {'running' if pg.exists() else 'stopped'} ({env.get('DATABASE_URL', '-')})")
    say(f"Redis: {'running' if redis_pid() else 'stopped'} ({env.get('REDIS_URL', '-')})")


def main(argv: list[str]) -> int:
    commands = {"up": up, "down": down, "status": status}
    if len(argv) != 2 or argv[1] not in commands:
        print(f"usage: {argv[0]} up|down|status", file=sys.stderr)
        return 2
    try:
        commands[argv[1]]()
    except ServiceError as exc:
        print(f"[services] error: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        print(
            f"[services] error: {' '.join(map(str, exc.cmd))} exited with {exc.returncode}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
