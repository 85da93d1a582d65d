"""People and their credentials, kept in the record's database: a name, a role, a password hashed
with Argon2id (argon2-cffi, the OWASP recommendation), and API tokens of their own for MES clients
and scripts, kept as sha256 digests (a token is 256 random bits: a fast digest is enough, and the
token itself is shown once, never stored).

Roles, least privilege first: ``operator`` (view, review), ``engineer`` (+ recipes, thresholds,
bundles, changeover, trigger), ``admin`` (+ users).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import Table, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from lineguard.store.records import stored_utc

Role = Literal["operator", "engineer", "admin"]
ROLES: tuple[Role, ...] = ("operator", "engineer", "admin")
NAME = re.compile(r"^[A-Za-z0-9_.@\-]{1,64}$")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # argon2 takes any length; a megabyte "password" is an attack on the CPU
TOKEN_PREFIX = "lgu_"  # tells a user token from the station's machine token in logs


class UserError(ValueError):
    """A user change that cannot be made (unknown or duplicate name, weak password, bad role)."""


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    disabled: bool
    created_at: datetime


@dataclass(frozen=True)
class Tables:
    users: Table
    tokens: Table


def _hasher():
    from argon2 import PasswordHasher  # the `api` extra

    return PasswordHasher()  # Argon2id with the library's current (RFC 9106 low-memory) parameters


RESERVED = ("station",)  # the name the station's own (machine) token acts under


def _check(name: str, role: str | None = None) -> None:
    if not NAME.match(name):
        raise UserError(f"user name {name!r}: 1-64 letters, digits, '.', '_', '-' or '@'")
    if name in RESERVED:
        raise UserError(f"user name {name!r} is the station's own; choose another")
    if role is not None and role not in ROLES:
        raise UserError(f"role {role!r}: one of {', '.join(ROLES)}")


def _strong(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UserError(f"a password needs {MIN_PASSWORD} to {MAX_PASSWORD} characters")


def add_user(engine: Engine, t: Tables, name: str, role: str, password: str) -> User:
    _check(name, role)
    _strong(password)
    now = datetime.now(UTC)
    try:
        with engine.begin() as connection:
            connection.execute(
                t.users.insert().values(
                    name=name,
                    role=role,
                    password_hash=_hasher().hash(password),
                    disabled=False,
                    created_at=now,
                )
            )
    except IntegrityError:
        raise UserError(f"a user {name!r} exists already") from None
    return User(name, role, False, now)  # type: ignore[arg-type]


def users(engine: Engine, t: Tables) -> list[User]:
    with engine.connect() as connection:
        rows = connection.execute(select(t.users).order_by(t.users.c.name)).mappings()
        return [_user(row) for row in rows]


def _user(row) -> User:
    return User(row["name"], row["role"], bool(row["disabled"]), stored_utc(row["created_at"]))


def user(engine: Engine, t: Tables, name: str) -> User:
    with engine.connect() as connection:
        row = connection.execute(select(t.users).where(t.users.c.name == name)).mappings().first()
    if row is None:
        raise UserError(f"no user {name!r}")
    return _user(row)


def set_user(
    engine: Engine, t: Tables, name: str, *, role: str | None = None, disabled: bool | None = None,
    password: str | None = None,
) -> User:  # fmt: skip
    """Change a user's role, disable or enable them, or set a new password."""
    _check(name, role)
    values: dict = {}
    if role is not None:
        values["role"] = role
    if disabled is not None:
        values["disabled"] = disabled
    if password is not None:
        _strong(password)
        values["password_hash"] = _hasher().hash(password)
    with engine.begin() as connection:
        if not connection.execute(update(t.users).where(t.users.c.name == name).values(**values)).rowcount:
            raise UserError(f"no user {name!r}")
    return user(engine, t, name)


def check_password(engine: Engine, t: Tables, name: str, password: str) -> User | None:
    """The user when ``password`` is theirs and they are enabled; else None (the same answer for
    an unknown name, so it reveals nothing). Constant work either way: an unknown name is
    verified against a dummy hash."""
    from argon2.exceptions import VerificationError

    hasher = _hasher()
    with engine.connect() as connection:
        row = connection.execute(select(t.users).where(t.users.c.name == name)).mappings().first()
    stored = row["password_hash"] if row is not None else _dummy_hash(hasher)
    try:
        hasher.verify(stored, password[:MAX_PASSWORD])
    except VerificationError:
        return None
    if row is None or row["disabled"]:
        return None
    return _user(row)


_dummy: list[str] = []  # one hash of a random password, made on first need


def _dummy_hash(hasher) -> str:
    if not _dummy:
        _dummy.append(hasher.hash(secrets.token_hex(16)))
    return _dummy[0]


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(engine: Engine, t: Tables, name: str, label: str = "") -> str:
    """A new API token for ``name``: returned once, kept only as its digest."""
    _check(name)
    user(engine, t, name)  # refuses an unknown user
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with engine.begin() as connection:
        connection.execute(
            t.tokens.insert().values(
                user=name,
                digest=token_digest(token),
                label=label[:64],
                created_at=datetime.now(UTC),
                revoked=False,
            )
        )
    return token


def revoke_tokens(engine: Engine, t: Tables, name: str) -> int:
    with engine.begin() as connection:
        return connection.execute(
            update(t.tokens).where(t.tokens.c.user == name, ~t.tokens.c.revoked).values(revoked=True)
        ).rowcount


def token_user(engine: Engine, t: Tables, token: str) -> User | None:
    """Whose token this is, when it is live and its user enabled."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 256:
        return None
    query = (
        select(t.users)
        .join(t.tokens, t.tokens.c.user == t.users.c.name)
        .where(t.tokens.c.digest == token_digest(token), ~t.tokens.c.revoked, ~t.users.c.disabled)
    )
    with engine.connect() as connection:
        row = connection.execute(query).mappings().first()
    return None if row is None else _user(row)
