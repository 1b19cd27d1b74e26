"""Usernames: one rule for the REST API, the CLI and the store.

The rule is the ``Username`` type of the REST bodies (``citadel.messages.rest``); the CLI and the
store check names against that same type, so a name one of them accepts, all accept.
"""

from __future__ import annotations

from typing import Final, get_args

import msgspec

from citadel.messages.rest import Username

USERNAME_PATTERN: Final[str] = get_args(Username)[1].pattern


def check_username(name: str) -> str:
    """Return ``name`` if it is a valid username, else raise ``ValueError`` saying why."""
    try:
        return msgspec.convert(name, Username)
    except msgspec.ValidationError:
        raise ValueError(
            f"invalid username {name!r}: use 1 to 64 letters, digits, '_', '.' or '-' "
            f"(the pattern {USERNAME_PATTERN})"
        ) from None
