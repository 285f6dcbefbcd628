"""Preparing Parley's database: the app's login role first, then the schema (`alembic upgrade`).

Migrations run as the owner (PARLEY_DATABASE_ADMIN_URL). The app connects as a different login
role (PARLEY_DATABASE_URL) that belongs to the `parley_app` group role: it owns no tables and
cannot bypass row-level security, so the tenant policies apply to every query the app makes.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from migrations.rls import APP_ROLE

# The same statement as the first migration, so the role exists before any migration has run.
_CREATE_GROUP_ROLE = f"""DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
        CREATE ROLE {APP_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
END $$"""

_CREATE_LOGIN = "CREATE ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB"
_ALTER_LOGIN = "ALTER ROLE %I WITH LOGIN"
_PASSWORD_CLAUSE = " PASSWORD %L"  # noqa: S105 (a format() template, not a secret)
_GRANT_GROUP = "GRANT %I TO %I"

_ROLE_ATTRIBUTES = text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = :login")
# Roles the login role can become (SET ROLE) that make row-level security useless.
_PRIVILEGED_ROLES = text(
    "SELECT rolname FROM pg_roles "
    "WHERE (rolsuper OR rolbypassrls) AND pg_has_role(:login, oid, 'MEMBER') "
    "ORDER BY rolname"
)
# Table owners are exempt from RLS unless FORCE is set; the app must own nothing at all.
_OWNED_RELATIONS = text(
    "SELECT n.nspname || '.' || c.relname FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') "
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg\\_toast%' "
    "AND pg_has_role(:login, c.relowner, 'MEMBER') "
    "ORDER BY 1 LIMIT 5"
)


class UnsafeAppRoleError(RuntimeError):
    """The app's login role could bypass row-level security, or cannot be set up safely."""


async def ensure_app_role(admin_url: str, app_url: str) -> None:
    """Create or update the app's login role, make it a member of `parley_app`, and check it.

    Runs in one transaction as the owner: if the role turns out to be unsafe (a superuser, a
    BYPASSRLS role, or one that owns tables), nothing is changed and UnsafeAppRoleError is raised.
    """
    login, password = _app_login(admin_url, app_url)
    engine = create_async_engine(admin_url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(_CREATE_GROUP_ROLE))
            await _ensure_login_role(connection, login, password)
            await _execute_formatted(connection, _GRANT_GROUP, APP_ROLE, login)
            await _check_login_role(connection, login)
    finally:
        await engine.dispose()


def _app_login(admin_url: str, app_url: str) -> tuple[str, str | None]:
    """The login role and password named by the app URL, refused if it is the owner's."""
    login = make_url(app_url).username
    if not login:
        raise UnsafeAppRoleError("PARLEY_DATABASE_URL names no user: add one, e.g. parley@host")
    if login == make_url(admin_url).username:
        raise UnsafeAppRoleError(
            f"PARLEY_DATABASE_URL uses the owner role {login!r} of PARLEY_DATABASE_ADMIN_URL: "
            "the app must connect as a separate role, e.g. 'parley'"
        )
    if login == APP_ROLE:
        raise UnsafeAppRoleError(
            f"{APP_ROLE!r} is the group role; PARLEY_DATABASE_URL needs a login role of its own"
        )
    return login, make_url(app_url).password


async def _ensure_login_role(connection: AsyncConnection, login: str, password: str | None) -> None:
    exists = await connection.scalar(
        text("SELECT 1 FROM pg_roles WHERE rolname = :login"), {"login": login}
    )
    template = _ALTER_LOGIN if exists else _CREATE_LOGIN
    if password:
        await _execute_formatted(connection, template + _PASSWORD_CLAUSE, login, password)
    else:
        await _execute_formatted(connection, template, login)


async def _execute_formatted(connection: AsyncConnection, template: str, *values: str) -> None:
    """Run a utility statement whose names (%I) and literals (%L) PostgreSQL quotes itself.

    Role statements take no bind parameters, so the server's own format() does the quoting:
    nothing in a URL can change the statement's meaning.
    """
    statement = await connection.scalar(
        text("SELECT format(CAST(:template AS text), VARIADIC CAST(:values AS text[]))"),
        {"template": template, "values": list(values)},
    )
    await connection.exec_driver_sql(str(statement))


async def _check_login_role(connection: AsyncConnection, login: str) -> None:
    is_superuser, bypasses_rls = (
        await connection.execute(_ROLE_ATTRIBUTES, {"login": login})
    ).one()
    if is_superuser or bypasses_rls:
        attribute = "SUPERUSER" if is_superuser else "BYPASSRLS"
        raise UnsafeAppRoleError(
            f"the app role {login!r} has {attribute}: row-level security would not apply to it; "
            "point PARLEY_DATABASE_URL at an unprivileged role"
        )
    privileged = (await connection.scalars(_PRIVILEGED_ROLES, {"login": login})).all()
    if privileged:
        raise UnsafeAppRoleError(
            f"the app role {login!r} is a member of {', '.join(privileged)}, which can bypass "
            "row-level security: revoke that membership"
        )
    owned = (await connection.scalars(_OWNED_RELATIONS, {"login": login})).all()
    if owned:
        raise UnsafeAppRoleError(
            f"the app role {login!r} owns tables ({', '.join(owned)}): "
            "the schema must belong to the PARLEY_DATABASE_ADMIN_URL role"
        )


def alembic_ini() -> Path:
    """The project's alembic.ini: next to the package in a checkout, else in the working dir."""
    for candidate in (Path(__file__).resolve().parent.parent, Path.cwd()):
        path = candidate / "alembic.ini"
        if path.is_file():
            return path
    raise FileNotFoundError("alembic.ini not found next to the backend package or in the cwd")


def run_migrations(admin_url: str, revision: str = "head") -> None:
    """Upgrade the schema to `revision`, connecting as the owner.

    migrations/env.py calls asyncio.run(), which cannot run inside an event loop, so the
    upgrade always runs in a thread of its own; this works from sync and async callers alike
    (an async caller should wrap it in asyncio.to_thread to keep its loop responsive).
    """
    config = Config(str(alembic_ini()))
    config.attributes["admin_url"] = admin_url
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="parley-migrate") as pool:
        pool.submit(command.upgrade, config, revision).result()
