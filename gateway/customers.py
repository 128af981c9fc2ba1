"""Retail customers: creation and lookup, with the rules an operator expects (unique login, sane e-mail)."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.errors import BadRequest, Conflict, NotFound
from gateway.security.passwords import PasswordHasher
from gateway.storage.ids import stable_uuid
from gateway.storage.models import RetailCustomer

__all__ = ["add_customer", "get_customer_by_username"]

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
# Deliberately loose (RFC 5321 is looser still): one @, something on each side, a dot in the domain, no spaces.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def add_customer(
    session: Session, passwords: PasswordHasher, *, username: str, email: str, password: str | None = None
) -> RetailCustomer:
    """Create a retail customer; login names are stored in lower case, so they are unique regardless of case."""
    if not _USERNAME.match(username):
        raise BadRequest(
            f"username {username!r} is invalid: use 1-64 letters, digits or . _ @ + -, starting with a letter or digit"
        )
    if len(email) > 254 or not _EMAIL.match(email):
        raise BadRequest(f"e-mail address {email!r} is invalid")
    if password is not None:
        problem = passwords.check_strength(password)
        if problem:
            raise BadRequest(problem)
    username = username.lower()
    existing = session.scalar(select(RetailCustomer.id).where(RetailCustomer.username == username))
    if existing is not None:
        raise Conflict(f"a customer named {username!r} already exists")
    customer = RetailCustomer(
        uuid=stable_uuid("RetailCustomer", username),
        username=username,
        email=email,
        password_hash=passwords.hash(password) if password is not None else None,
    )
    session.add(customer)
    session.flush()
    return customer


def get_customer_by_username(session: Session, username: str) -> RetailCustomer:
    """Return the customer with that login name (case-insensitive) or raise :class:`NotFound`."""
    customer = session.scalar(select(RetailCustomer).where(RetailCustomer.username == username.lower()))
    if customer is None:
        raise NotFound(f"no customer named {username!r}")
    return customer
