#!/usr/bin/env python3
"""Private PostgreSQL and Redis under var/ for `make run`, `make test`, `make up`/`make down`.

Standard library only: it runs before the virtualenv exists. Usage:

    python3 okada/devservices.py up       # start both (idempotent), write var/services.env
    python3 okada/devservices.py down     # stop both (idempotent)
    python3 okada/devservices.py status
    python3 okada/devservices.py system   # gettext and Chromium (apt-get as root)

When DATABASE_URL (or REDIS_URL) is set in the environment the matching private service is
neither started nor stopped: the caller brings their own.

The cluster is initialised with data checksums and pg_stat_statements preloaded and listens on
127.0.0.1 only (plus a socket under var/pg/run). initdb refuses to run as root, so when the
caller is root the cluster belongs to the `postgres` system user.

Other local users must not get in: 127.0.0.1 is open to every user of the machine. So:
- PostgreSQL asks for a password over TCP (scram-sha-256). The socket admits only the cluster
  owner's system user (peer, mapped to the `okada` role): that is how `up` sets the password.
- Redis requires a password (`requirepass`, in var/redis/redis.conf, mode 0600, never on a command
  line that `ps` shows).
- Both passwords are generated once and kept in var/services.env (mode 0600), inside the URLs that
  the settings read (DATABASE_URL is the single source of truth for psql, pg_dump and pgbench).
- A cluster or Redis made before passwords existed is upgraded in place on the next `up`:
  pg_hba.conf rewritten and reloaded and the password set (data kept); a Redis that does not
  answer to the password is restarted with it (its append-only file keeps the data).

`up` and `down` hold an exclusive lock (var/services.lock), so two at once never start two
servers on one data directory; a pid file is trusted only if it names a redis-server working in
our data directory (a stale pid may belong to another program by now).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("OKADA_VAR_DIR") or ROOT / "var").resolve()  # tests use a scratch one
PG_DIR = VAR / "pg"  # may be a symlink (see place_pg_dir), so paths below use its target
PG_DATA = PG_DIR.resolve() / "data"
PG_RUN = PG_DIR.resolve() / "run"
PG_LOG = PG_DIR.resolve() / "postgresql.log"
REDIS_DIR = VAR / "redis"
REDIS_PID = REDIS_DIR / "redis.pid"
REDIS_CONF = REDIS_DIR / "redis.conf"
ENV_FILE = VAR / "services.env"
LOCK_FILE = VAR / "services.lock"

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


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by its owner only (mode 0600), replacing it atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(fd, 0o600)  # a leftover tmp file may have had another mode
        out.write(text)
    os.replace(tmp, path)


def write_env_file(values: dict[str, str]) -> None:
    VAR.mkdir(parents=True, exist_ok=True)
    lines = ["# Written by okada/devservices.py: where the private services listen, with their"]
    lines += ["# passwords (keep this file mode 0600)."]
    lines += [f"{k}={v}" for k, v in sorted(values.items())]
    write_private(ENV_FILE, "\n".join(lines) + "\n")


def hide_password(url: str) -> str:
    return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", url)


def password(env: dict[str, str], key: str) -> str:
    """The password kept under `key` in services.env, made (URL-safe) the first time."""
    if not env.get(key):
        env[key] = secrets.token_urlsafe(24)
    return env[key]


@contextmanager
def exclusive() -> Iterator[None]:
    """One `up` or `down` at a time on this var/ directory (released when the process ends)."""
    VAR.mkdir(parents=True, exist_ok=True)
    with LOCK_FILE.open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("another `make up`/`make down` is running here: waiting for it ...")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


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


# Another worktree's `make up` may bind the port we found free before our server does: the server
# then fails with this in its log, and we move on to the next free port.
PORT_RACE = "Address already in use"
PORT_TRIES = 5


def log_since(path: Path, offset: int) -> str:
    """What `path` gained after `offset` bytes (a server's log of this start only)."""
    try:
        with path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")
    except OSError:
        return ""


def log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def port_taken_meanwhile(port: int) -> None:
    say(f"port {port} was taken meanwhile (another `make up`?), trying the next free one")


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
    # `--auth trust` only on disk: pg_auth_files() replaces it before the first start.
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


PG_HBA = """\
# Written by okada/devservices.py (rewritten on every `make up`).
# TCP asks for the password kept in var/services.env. The socket under var/pg/run admits only
# the cluster owner's system user, as the okada role (map `owner` in pg_ident.conf).
local   all   all                  peer map=owner
host    all   all   127.0.0.1/32   scram-sha-256
host    all   all   ::1/128        scram-sha-256
"""


def pg_auth_files(owner: str | None) -> bool:
    """Write pg_hba.conf and pg_ident.conf as they must be; True when either changed."""
    system_user = owner or pwd.getpwuid(os.geteuid()).pw_name
    wanted = {
        PG_DATA / "pg_hba.conf": PG_HBA,
        PG_DATA / "pg_ident.conf": f"# Written by okada/devservices.py.\nowner   {system_user}   {PG_USER}\n",
    }
    changed = False
    for path, text in wanted.items():
        if not path.exists() or path.read_text() != text:
            write_private(path, text)
            if owner:
                shutil.chown(path, owner, owner)
            changed = True
    return changed


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
    auth_changed = pg_auth_files(owner)
    if pg_running(bindir, owner):
        port = pg_port_from_pidfile() or int(env.get("OKADA_PG_PORT", DEFAULT_PG_PORT))
        say(f"PostgreSQL already running on 127.0.0.1:{port}")
        if auth_changed:
            cmd = [str(bindir / "pg_ctl"), "reload", "-D", str(PG_DATA)]
            subprocess.run(as_owner(cmd, owner), check=True, stdout=subprocess.DEVNULL)
            say("PostgreSQL now asks for a password over TCP (pg_hba.conf rewritten and reloaded)")
    else:
        # pg_ctl removes a stale postmaster.pid itself and a cluster left by a crash runs recovery.
        port = pg_start(bindir, owner, int(env.get("OKADA_PG_PORT", DEFAULT_PG_PORT)))
        say(f"PostgreSQL started on 127.0.0.1:{port} (log: {PG_LOG})")
    secret = password(env, "OKADA_PG_PASSWORD")
    # Over the owner's socket (peer), the password on standard input (never in a command line):
    # set on every `up`, so the cluster always takes the one services.env holds.
    psql = [str(bindir / "psql"), "-h", str(PG_RUN), "-p", str(port), "-U", PG_USER, "-d", "postgres"]
    script = (
        f"\\set pw '{secret}'\n"
        "SET password_encryption = 'scram-sha-256';\n"
        f"ALTER ROLE {PG_USER} PASSWORD :'pw';\n"
        f"SELECT 'CREATE DATABASE \"{PG_DB}\"' WHERE NOT EXISTS "
        f"(SELECT FROM pg_database WHERE datname = '{PG_DB}') \\gexec\n"
    )
    done = subprocess.run(
        as_owner([*psql, "-qtA", "-v", "ON_ERROR_STOP=1", "-f", "-"], owner),
        input=script,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise ServiceError(f"cannot set the PostgreSQL password: {done.stderr.strip()}")
    pg_refuses_no_password(bindir, port)
    env["OKADA_PG_PORT"] = str(port)
    env["DATABASE_URL"] = f"postgres://{PG_USER}:{secret}@127.0.0.1:{port}/{PG_DB}"


def pg_start(bindir: Path, owner: str | None, preferred: int) -> int:
    """Start the cluster on the preferred port or the next free one; the port it listens on."""
    start = preferred
    for _ in range(PORT_TRIES):
        port = pick_port(start)
        logged = log_size(PG_LOG)
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
        if result.returncode == 0:
            return port
        this_start = log_since(PG_LOG, logged)
        if PORT_RACE not in this_start:
            tail = this_start.splitlines()[-5:]
            raise ServiceError("PostgreSQL failed to start: " + " | ".join(tail or [result.stderr]))
        port_taken_meanwhile(port)
        start = port + 1
    raise ServiceError(f"PostgreSQL failed to start: {PORT_TRIES} ports in a row were taken meanwhile")


def pg_refuses_no_password(bindir: Path, port: int) -> None:
    """Check that a TCP connection without the password is refused (a reload that failed would
    leave the old, trusting rules in force)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    probe = subprocess.run(
        [
            str(bindir / "psql"),
            "-w",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            PG_USER,
            "-d",
            "postgres",
            "-c",
            "SELECT 1",
        ],
        env={**env, "PGPASSFILE": os.devnull},
        capture_output=True,
        text=True,
    )
    if probe.returncode == 0:
        raise ServiceError(
            f"PostgreSQL still lets anyone in without a password: see {PG_DATA / 'pg_hba.conf'}"
        )


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


def is_our_redis(pid: int) -> bool:
    """A live redis-server working in our data directory (Redis chdirs to its `dir`)."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:  # gone, or another user's process
        return False
    return comm.startswith("redis-server") and cwd == str(REDIS_DIR.resolve()) and pid_alive(pid)


def redis_pid() -> int | None:
    """Our Redis server's pid. The pid file is trusted only if it names our redis-server: after
    a crash the pid may belong to another program by now, which must never be signalled."""
    try:
        pid = int(REDIS_PID.read_text().strip())
    except (OSError, ValueError):
        pid = None
    if pid and is_our_redis(pid):
        return pid
    REDIS_PID.unlink(missing_ok=True)  # stale pid file from a crash
    # Ours may still run with its pid file gone: never start a second one on the same data.
    return next((p for p in processes_working_in(REDIS_DIR.resolve()) if is_our_redis(p)), None)


def redis_answers_to(port: int, secret: str) -> bool:
    """Whether the Redis on `port` accepts `secret` (a Redis without requirepass refuses AUTH)."""
    command = f"*2\r\n$4\r\nAUTH\r\n${len(secret)}\r\n{secret}\r\n".encode()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.sendall(command)
            return conn.recv(64).startswith(b"+OK")
    except OSError:
        return False


def redis_stop(pid: int) -> None:
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not pid_alive(pid), "Redis shutdown")


def redis_config(port: int, secret: str) -> str:
    def quoted(path: Path) -> str:
        return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'

    return (
        "# Written by okada/devservices.py on every start (mode 0600: it holds the password).\n"
        "bind 127.0.0.1\n"
        f"port {port}\n"
        f"dir {quoted(REDIS_DIR.resolve())}\n"
        "daemonize yes\n"
        f"pidfile {quoted(REDIS_PID)}\n"
        f"logfile {quoted(REDIS_DIR / 'redis.log')}\n"
        "appendonly yes\n"
        "protected-mode yes\n"
        f"requirepass {secret}\n"
    )


def redis_up(env: dict[str, str]) -> None:
    server = shutil.which("redis-server")
    if not server:
        apt_install(["redis-server"], "redis-server not found")
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    REDIS_DIR.chmod(0o700)  # its files hold the cache and sessions
    port = int(env.get("OKADA_REDIS_PORT", DEFAULT_REDIS_PORT))
    secret = password(env, "OKADA_REDIS_PASSWORD")
    pid = redis_pid()
    if pid and redis_answers_to(port, secret):
        say(f"Redis already running on 127.0.0.1:{port}")
    else:
        if pid:  # ours, but without this password (made before passwords existed): restart it
            say("restarting Redis so that it requires a password")
            redis_stop(pid)
        port = redis_start(server, secret, port)
        say(f"Redis started on 127.0.0.1:{port}")
    env["OKADA_REDIS_PORT"] = str(port)
    env["REDIS_URL"] = f"redis://default:{secret}@127.0.0.1:{port}/0"  # Redis 6+ user `default`


def redis_start(server: str, secret: str, preferred: int) -> int:
    """Start Redis on the preferred port or the next free one; the port it listens on."""
    log = REDIS_DIR / "redis.log"
    start = preferred
    for _ in range(PORT_TRIES):
        port = pick_port(start)
        logged = log_size(log)
        write_private(REDIS_CONF, redis_config(port, secret))
        subprocess.run([server, str(REDIS_CONF)], check=True)

        def answers(port: int = port, logged: int = logged) -> bool:
            # It daemonizes before it binds: a bind that fails shows only in its log.
            return redis_answers_to(port, secret) or PORT_RACE in log_since(log, logged)

        wait_until(answers, "Redis")
        if redis_answers_to(port, secret):
            return port
        port_taken_meanwhile(port)
        start = port + 1
    raise ServiceError(f"Redis failed to start: {PORT_TRIES} ports in a row were taken meanwhile")


def redis_down() -> None:
    pid = redis_pid()
    if pid:
        redis_stop(pid)
        say("Redis stopped")


# --- gpg (encrypted backups) ------------------------------------------------------------------


def gpg_check() -> None:
    """Backups are encrypted with gpg when OKADA_BACKUP_PASSPHRASE is set (and the tests encrypt
    one): install it as root, otherwise say in one line what to install."""
    if shutil.which("gpg") and shutil.which("gpgconf") and shutil.which("gpg-agent"):
        return
    if is_root():
        apt_install(["gnupg"], "gpg not found (encrypted backups)")
    else:
        say("gpg not found: encrypted backups need it: install it with `sudo apt-get install -y gnupg`")


# --- commands ---------------------------------------------------------------------------------


def up() -> None:
    with exclusive():
        env = read_env_file()
        if os.environ.get("DATABASE_URL"):
            say("DATABASE_URL is set: not starting the private PostgreSQL")
        else:
            pg_up(env)
            write_env_file(env)  # the password is set: keep it before anything else can fail
        if os.environ.get("REDIS_URL"):
            say("REDIS_URL is set: not starting the private Redis")
        else:
            redis_up(env)
        write_env_file(env)
        gpg_check()


def down() -> None:
    with exclusive():
        if not os.environ.get("DATABASE_URL"):
            pg_down()
        if not os.environ.get("REDIS_URL"):
            redis_down()


def status() -> None:
    env = read_env_file()
    pg = "running" if (PG_DATA / "postmaster.pid").exists() else "stopped"
    say(f"PostgreSQL: {pg} ({hide_password(env.get('DATABASE_URL', '-'))})")
    say(f"Redis: {'running' if redis_pid() else 'stopped'} ({hide_password(env.get('REDIS_URL', '-'))})")


# Programs the project needs besides the services: GNU gettext compiles and extracts the
# translations (make messages), Debian's Chromium runs the admin's browser tests (Playwright
# drives it; Playwright's own browser download is not used), strace shows the tests that an
# archive is fsynced before its partition is dropped (tests/filesystems.traced_calls).
SYSTEM_PROGRAMS = {
    "msgfmt": ["gettext"],
    "xgettext": ["gettext"],
    "/usr/bin/chromium": ["chromium", "chromium-driver"],
    "strace": ["strace"],
}


def system() -> None:
    """Install the missing system programs with apt-get as root; otherwise say what is missing."""
    missing: list[str] = []
    for program, packages in SYSTEM_PROGRAMS.items():
        found = Path(program).exists() if program.startswith("/") else shutil.which(program)
        if not found:
            missing += [p for p in packages if p not in missing]
    if missing:
        apt_install(missing, f"missing system packages ({', '.join(missing)})")


def main(argv: list[str]) -> int:
    commands = {"up": up, "down": down, "status": status, "system": system}
    if len(argv) != 2 or argv[1] not in commands:
        print(f"usage: {argv[0]} up|down|status|system", file=sys.stderr)
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
