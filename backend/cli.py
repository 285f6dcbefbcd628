"""The `parley` command: run the whole platform locally, or one part of it.

`parley run` starts embedded PostgreSQL and Redis when no PARLEY_DATABASE_URL / PARLEY_REDIS_URL
is configured, migrates, seeds a demo workspace, then supervises the API and the worker as two
child processes until Ctrl-C or SIGTERM. The other subcommands are those parts on their own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging.config
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from backend.config import Settings, get_settings

if TYPE_CHECKING:
    from pydantic import SecretStr

    from backend.embedded import EmbeddedServices

DEMO_EMAIL = "demo@example.com"
DEMO_TENANT_NAME = "Demo Workspace"
DEMO_TENANT_SLUG = "demo"
DEMO_LOGIN_FILE = "demo-login.txt"

# How long children get on top of the worker's own grace period before they are killed.
STOP_MARGIN_SECONDS = 10.0

Handler = Callable[[argparse.Namespace], int]
T = TypeVar("T")
SeedOutcome = Literal["created", "exists", "other-password"]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    return handler(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parley",
        description="Parley, a multi-tenant AI assistant platform. Settings come from PARLEY_* "
        "environment variables and .env (see docs/configuration.md).",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _add_run(commands)
    _add_api(commands)
    _add_worker(commands)
    _add_migrate(commands)
    _add_seed_demo(commands)
    _add_create_user(commands)
    return parser


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    handler: Handler,
    summary: str,
    description: str,
) -> argparse.ArgumentParser:
    command = commands.add_parser(name, help=summary, description=description)
    command.set_defaults(handler=handler)
    return command


def _add_run(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _command(
        commands,
        "run",
        cmd_run,
        "everything for local use: services, migrations, demo data, API and worker",
        "Start embedded PostgreSQL and Redis (data in PARLEY_DATA_DIR) unless "
        "PARLEY_DATABASE_URL / PARLEY_REDIS_URL are set, apply migrations, create the demo "
        "workspace, then run the API and the worker until Ctrl-C or SIGTERM, and stop it all "
        "cleanly.",
    )


def _add_api(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = _command(
        commands,
        "api",
        cmd_api,
        "serve the HTTP and WebSocket API (uvicorn)",
        "Serve the API with uvicorn. Host, port and worker processes come from "
        "PARLEY_API_HOST, PARLEY_API_PORT and PARLEY_API_WORKERS unless given here.",
    )
    command.add_argument("--host", help="address to listen on (default: PARLEY_API_HOST)")
    command.add_argument("--port", type=int, help="port to listen on (default: PARLEY_API_PORT)")
    command.add_argument(
        "--reload", action="store_true", help="restart when the code changes (development only)"
    )


def _add_worker(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = _command(
        commands,
        "worker",
        cmd_worker,
        "run the background job worker (ARQ)",
        "Run the ARQ worker that executes background jobs queued in Redis (PARLEY_REDIS_URL).",
    )
    command.add_argument(
        "--check",
        action="store_true",
        help="exit 0 if a worker is running and reported healthy recently, 1 otherwise",
    )


def _add_migrate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _command(
        commands,
        "migrate",
        cmd_migrate,
        "create the app's database role and apply migrations",
        "Connect as the owner (PARLEY_DATABASE_ADMIN_URL), create or update the app's login "
        "role named in PARLEY_DATABASE_URL as a member of parley_app, refuse if that role could "
        "bypass row-level security, then run 'alembic upgrade head'.",
    )


def _add_seed_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _command(
        commands,
        "seed-demo",
        cmd_seed_demo,
        "create the demo owner and workspace (idempotent) and print the login",
        f"Create the user {DEMO_EMAIL} and the workspace '{DEMO_TENANT_NAME}' "
        f"(slug '{DEMO_TENANT_SLUG}') unless they exist, then print the login. The generated "
        f"password is kept in PARLEY_DATA_DIR/{DEMO_LOGIN_FILE} so every run prints the same one.",
    )


def _add_create_user(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = _command(
        commands,
        "create-user",
        cmd_create_user,
        "create an account, optionally with a workspace it owns",
        "Create a user account. Without --password the password is prompted for (or read "
        "from the first line of stdin when it is not a terminal).",
    )
    command.add_argument("--email", required=True, help="the account's email address")
    command.add_argument(
        "--password", help="the password (visible in the process list: prefer the prompt)"
    )
    command.add_argument("--full-name", help="the person's name")
    command.add_argument(
        "--verified", action="store_true", help="mark the email as verified (no email is sent)"
    )
    command.add_argument("--tenant-name", help="also create a workspace with this name")
    command.add_argument(
        "--tenant-slug", help="the workspace's address (default: derived from --tenant-name)"
    )


# parley run ---------------------------------------------------------------------------------


class _StopRequested(BaseException):
    """Raised by the SIGINT/SIGTERM handler to unwind `parley run` from wherever it is.

    A BaseException, like KeyboardInterrupt, so that no `except Exception` on the way eats it.
    """


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes]


def cmd_run(args: argparse.Namespace) -> int:
    from backend import embedded

    _handle_stop_signals(raise_stop=True)
    services: EmbeddedServices | None = None
    children: list[_Child] = []
    code = 0
    try:
        services = embedded.start()
        _describe_services(services)
        code = _prepare_and_serve(children)
    except _StopRequested:
        code = 0
    finally:
        # From here on, signals must not interrupt the orderly shutdown.
        _handle_stop_signals(raise_stop=False)
        if not _stop_children(children):
            code = code or 1
        if services is not None:
            print("Stopping embedded services...", flush=True)
            embedded.stop(services)
    return code


def _handle_stop_signals(*, raise_stop: bool) -> None:
    def request_stop(signum: int, frame: FrameType | None) -> None:
        raise _StopRequested

    handler = request_stop if raise_stop else signal.SIG_IGN
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _describe_services(services: EmbeddedServices) -> None:
    if services.postgres is not None:
        print(f"Embedded PostgreSQL: data in {services.data_dir / 'postgres'}", flush=True)
    if services.redis is not None:
        print(f"Embedded Redis: data in {services.data_dir / 'redis'}", flush=True)


def _prepare_and_serve(children: list[_Child]) -> int:
    """Migrate and seed, then start the API and worker into `children` and watch them."""
    if _run_step("migrate") != 0:
        return 1
    login = _seed_demo_step()
    if login is None:
        return 1
    children.append(_spawn("api"))
    children.append(_spawn("worker"))
    return _supervise(children, login)


def _parley_argv(command: str) -> list[str]:
    return [sys.executable, "-m", "backend.cli", command]


def _run_step(command: str) -> int:
    """One preparation step in a process of its own, so it leaves no state behind in this one."""
    code = subprocess.run(_parley_argv(command), check=False).returncode
    if code != 0:
        print(f"parley run: 'parley {command}' failed with exit code {code}", file=sys.stderr)
    return code


def _seed_demo_step() -> str | None:
    """Seed the demo workspace; returns its login text to repeat once the API is up."""
    result = subprocess.run(_parley_argv("seed-demo"), check=False, stdout=subprocess.PIPE)
    login = result.stdout.decode()
    print(login, end="", flush=True)
    if result.returncode != 0:
        print(
            f"parley run: 'parley seed-demo' failed with code {result.returncode}", file=sys.stderr
        )
        return None
    return login


def _spawn(command: str) -> _Child:
    # Own session: a Ctrl-C in the terminal reaches only this supervisor, which then stops each
    # child exactly once and in order (a second SIGINT would make uvicorn exit abruptly).
    process = subprocess.Popen(_parley_argv(command), start_new_session=True)
    return _Child(command, process)


def _supervise(children: list[_Child], login: str) -> int:
    """Wait until a child exits on its own (an error) or a stop signal arrives."""
    settings = get_settings()
    announced = False
    while True:
        for child in children:
            code = child.process.poll()
            if code is not None:
                print(f"parley run: the {child.name} process exited with code {code}", flush=True)
                return 1
        if not announced and _api_answers(settings):
            _announce(settings, login)
            announced = True
        time.sleep(0.25)


def _local_base_url(settings: Settings) -> str:
    host = settings.api_host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 (recognizing it, not binding to it)
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.api_port}"


def _api_answers(settings: Settings) -> bool:
    url = f"{_local_base_url(settings)}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (http URL we built)
            return bool(response.status == 200)
    except OSError:
        return False


def _announce(settings: Settings, login: str) -> None:
    base = _local_base_url(settings)
    print(
        f"\nParley is running.\n{login}API docs: {base}/docs\nPress Ctrl-C to stop.\n",
        flush=True,
    )


def _stop_children(children: list[_Child]) -> bool:
    """SIGTERM every running child, wait for them, SIGKILL stragglers; True if none needed it."""
    running = [child for child in children if child.process.poll() is None]
    if running:
        print("Stopping the API and the worker...", flush=True)
    for child in running:
        child.process.terminate()
    timeout = get_settings().worker_shutdown_grace_seconds + STOP_MARGIN_SECONDS
    deadline = time.monotonic() + timeout
    clean = True
    for child in running:
        try:
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"parley run: the {child.name} process did not stop; killing it", flush=True)
            child.process.kill()
            child.process.wait()
            clean = False
    return clean


# parley api / worker ------------------------------------------------------------------------


def cmd_api(args: argparse.Namespace) -> int:
    settings = get_settings()
    serve(
        "backend.main:create_app",
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        workers=None if args.reload else settings.api_workers,
        log_level=settings.log_level.lower(),
        reload=args.reload,
    )
    return 0


def serve(
    factory: str,
    *,
    host: str,
    port: int,
    workers: int | None,
    log_level: str,
    **options: Any,
) -> None:
    """Run an app factory under uvicorn as `parley api` runs Parley, with several workers
    sharing their metrics (see shared_metrics). `options` are more of uvicorn's (the
    benchmarks choose the event loop and HTTP parser, and turn the access log off)."""
    import uvicorn

    with shared_metrics(workers or 1):
        uvicorn.run(
            factory,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            # Per-message compression costs CPU and memory per socket for small chat frames.
            ws_per_message_deflate=False,
            server_header=False,
            **options,
        )


@contextlib.contextmanager
def shared_metrics(workers: int) -> Iterator[None]:
    """With several API processes, /metrics adds up all of theirs (backend/metrics.py): they
    write them to files in PROMETHEUS_MULTIPROC_DIR. An operator's directory is emptied of
    an earlier run's files first; without one, a temporary directory serves this run."""
    if workers <= 1:
        yield
        return
    from backend.metrics import MULTIPROCESS_DIR_ENV

    given = os.environ.get(MULTIPROCESS_DIR_ENV)
    directory = Path(given) if given else Path(tempfile.mkdtemp(prefix="parley-metrics-"))
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROCESS_DIR_ENV] = str(directory)
    try:
        yield
    finally:
        if not given:
            shutil.rmtree(directory, ignore_errors=True)


def cmd_worker(args: argparse.Namespace) -> int:
    from arq.logs import default_log_config
    from arq.worker import check_health, run_worker

    from worker.settings import WorkerSettings

    # ARQ reads the class attribute by attribute; its typing Protocol wants more than it needs.
    settings: Any = WorkerSettings
    if args.check:
        return int(check_health(settings))
    # ARQ's own console format: one line per worker start, job and shutdown. Not propagated:
    # the root handler that Parley's logging setup adds would print every line twice.
    logging.config.dictConfig(default_log_config(verbose=False))
    logging.getLogger("arq").propagate = False
    run_worker(settings)
    return 0


# parley migrate -----------------------------------------------------------------------------


def cmd_migrate(args: argparse.Namespace) -> int:
    from backend.migrate import UnsafeAppRoleError, alembic_ini, ensure_app_role, run_migrations

    settings = get_settings()
    admin_url = _secret_or_none(settings.database_admin_url)
    app_url = _secret_or_none(settings.database_url)
    if admin_url is None or app_url is None:
        print(
            "parley migrate: set PARLEY_DATABASE_ADMIN_URL (the owner) and PARLEY_DATABASE_URL "
            "(the app's role)",
            file=sys.stderr,
        )
        return 2
    try:
        asyncio.run(ensure_app_role(admin_url, app_url))
    except UnsafeAppRoleError as exc:
        print(f"parley migrate: {exc}", file=sys.stderr)
        return 1
    # Alembic's own logging section: prints each applied revision.
    logging.config.fileConfig(alembic_ini(), disable_existing_loggers=False)
    run_migrations(admin_url)
    print("Database is up to date.", flush=True)
    return 0


def _secret_or_none(value: SecretStr | None) -> str | None:
    """The secret's text; None when unset or empty (compose blanks the owner URL for the API)."""
    text = value.get_secret_value() if value is not None else ""
    return text or None


# parley seed-demo ---------------------------------------------------------------------------


def cmd_seed_demo(args: argparse.Namespace) -> int:
    if not _database_configured("seed-demo"):
        return 2
    settings = get_settings()
    login_file = settings.data_dir / DEMO_LOGIN_FILE
    password = _saved_demo_password(login_file) or secrets.token_urlsafe(12)
    outcome = asyncio.run(_with_database(_seed_demo(password)))
    if outcome == "created":
        _save_demo_password(login_file, password)
    print("Demo login")
    print(f"  URL:      {settings.public_url}")
    print(f"  email:    {DEMO_EMAIL}")
    if outcome == "other-password":
        print(f"  password: unknown (the demo user predates {login_file})")
    else:
        print(f"  password: {password}")
    return 0


def _saved_demo_password(path: Path) -> str | None:
    if not path.is_file():
        return None
    for line in path.read_text().splitlines():
        if line.startswith("password: "):
            return line.removeprefix("password: ").strip() or None
    return None


def _save_demo_password(path: Path, password: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)  # before the secret goes in
    path.write_text(f"email: {DEMO_EMAIL}\npassword: {password}\n")


async def _seed_demo(password: str) -> SeedOutcome:
    """Create the demo owner and workspace with `password`, unless the owner exists already."""
    from fastapi_users.password import PasswordHelper

    from backend.auth.service import create_user, get_user_by_email
    from backend.db import set_user_context, unit_of_work
    from backend.tenancy.service import create_tenant, list_user_tenants
    from backend.widget.demo import seed_demo_assistant
    from backend.widget.endpoints import DEMO_FILE

    outcome: SeedOutcome = "created"
    async with unit_of_work() as session:
        user = await get_user_by_email(session, DEMO_EMAIL)
        if user is not None:
            verified, _ = PasswordHelper().verify_and_update(password, user.hashed_password)
            outcome = "exists" if verified else "other-password"
            await set_user_context(session, user.id)
            owned = [t for t, _ in await list_user_tenants(session, user.id)]
            tenant_id = next((t.id for t in owned if t.slug == DEMO_TENANT_SLUG), None)
        else:
            user = await create_user(
                session, email=DEMO_EMAIL, password=password, full_name="Demo Owner", verified=True
            )
            tenant = await create_tenant(
                session, owner_id=user.id, name=DEMO_TENANT_NAME, slug=DEMO_TENANT_SLUG
            )
            tenant_id = tenant.id
    if tenant_id is not None:
        async with unit_of_work(tenant_id=tenant_id) as session:
            await seed_demo_assistant(session, tenant_id, get_settings().data_dir / DEMO_FILE)
    return outcome


# parley create-user -------------------------------------------------------------------------


def cmd_create_user(args: argparse.Namespace) -> int:
    from backend.errors import AppError

    if not _database_configured("create-user"):
        return 2
    if args.tenant_slug and not args.tenant_name:
        print("parley create-user: --tenant-slug needs --tenant-name", file=sys.stderr)
        return 2
    slug = args.tenant_slug or (_slugify(args.tenant_name) if args.tenant_name else None)
    password = args.password or _read_password()
    if not password:
        print("parley create-user: the password is empty", file=sys.stderr)
        return 2
    try:
        lines = asyncio.run(_with_database(_create_user(args, password, slug)))
    except AppError as exc:
        print(f"parley create-user: {exc.detail}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


def _read_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat the password: ") != first:
        print("parley create-user: the passwords differ", file=sys.stderr)
        return ""
    return first


def _slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63]


async def _create_user(args: argparse.Namespace, password: str, slug: str | None) -> list[str]:
    from backend.auth.service import create_user
    from backend.db import unit_of_work
    from backend.tenancy.service import create_tenant

    async with unit_of_work() as session:
        user = await create_user(
            session,
            email=args.email,
            password=password,
            full_name=args.full_name,
            verified=args.verified,
        )
        lines = [f"Created user {user.email} ({user.id})."]
        if args.tenant_name and slug:
            tenant = await create_tenant(
                session, owner_id=user.id, name=args.tenant_name, slug=slug
            )
            lines.append(
                f"Created workspace '{tenant.name}' (slug '{tenant.slug}', {tenant.id}) "
                f"owned by {user.email}."
            )
    return lines


# Shared -------------------------------------------------------------------------------------


def _database_configured(command: str) -> bool:
    if get_settings().database_url is None:
        print(
            f"parley {command}: PARLEY_DATABASE_URL is not set "
            "('parley run' sets up a local database by itself)",
            file=sys.stderr,
        )
        return False
    return True


async def _with_database(work: Awaitable[T]) -> T:
    """Await `work`, then close the pools it opened while this event loop still runs."""
    from backend.db import get_engine
    from backend.jobs import close_arq_pool

    try:
        return await work
    finally:
        await close_arq_pool()
        await get_engine().dispose()


if __name__ == "__main__":
    sys.exit(main())
