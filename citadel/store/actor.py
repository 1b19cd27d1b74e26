"""The store actor: the single writer of Citadel's SQLite file.

Every write goes through this actor's mailbox, one at a time, in order. It runs the SQLite
statement on the event loop's thread: in WAL mode with ``synchronous=NORMAL`` a commit does not
fsync, so a write costs tens of microseconds (see ``scripts/bench_store``), less than a hop to a
worker thread, and there is never a second thread touching the connection. Reads that must be
cheap (token verification) call the `Store` directly on the same thread.

Expected refusals (`StoreError`, ``ValueError``) come back to the caller as exceptions and leave
the actor running; anything else (a broken disk) crashes it and its supervisor decides.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from actors import Actor, Address, MailboxPolicy
from citadel.store._errors import StoreError
from citadel.store._store import Store

T = TypeVar("T")


class StoreOp(msgspec.Struct, frozen=True):
    """Run ``apply(store)`` as the single writer; the result is the call's reply."""

    apply: Callable[[Store], Any]


class _Refused(msgspec.Struct, frozen=True):
    error: Any


class StoreActor(Actor[StoreOp]):
    """Owns writes to the `Store`."""

    mailbox_policy = MailboxPolicy(capacity=10_000)

    def __init__(self, store: Store) -> None:
        self.store = store

    async def handle(self, message: StoreOp) -> Any:
        try:
            return message.apply(self.store)
        except (StoreError, ValueError) as error:
            return _Refused(error)


async def run_in_store(address: Address[StoreOp], apply: Callable[[Store], T]) -> T:
    """Ask the store actor to run ``apply`` and return its result (or raise its refusal)."""
    result = await address.call(StoreOp(apply))
    if isinstance(result, _Refused):
        raise result.error
    return result  # type: ignore[no-any-return]  # the reply is apply's result
