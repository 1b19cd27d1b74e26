"""Checking a username and password against the store (the login decision)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from citadel.auth._passwords import verify_password_or_dummy

if TYPE_CHECKING:
    from citadel.store import Store, User


def check_credentials(store: Store, username: str, password: str) -> User | None:
    """Return the user if the password is right and the account enabled, else None.

    Unknown users cost the same scrypt work as known ones, and a disabled account is refused
    only after the hash check, so timing reveals neither which names exist nor which are
    disabled.
    """
    user = store.get_user(username)
    ok = verify_password_or_dummy(None if user is None else user.password_hash, password)
    if user is None or not ok or user.disabled:
        return None
    return user
