"""A registry of unique names for actor addresses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._exceptions import NameTaken

if TYPE_CHECKING:
    from ._actor import Address


class Registry:
    """Maps unique names to addresses.

    A name stays bound across restarts of its actor (the address is stable) and is forgotten
    automatically when the actor ends for good.
    """

    def __init__(self) -> None:
        self._names: dict[str, Address[Any]] = {}

    def register(self, name: str, address: Address[Any]) -> None:
        """Bind ``name`` to ``address``.

        Raises:
            NameTaken: ``name`` is bound to another address that has not ended.
            ValueError: ``address`` has already ended for good.
        """
        current = self._names.get(name)
        if current is address:
            return
        if current is not None and not current.closed:
            raise NameTaken(f"name {name!r} is already registered to {current!r}")
        if address.closed:
            raise ValueError(f"cannot register {name!r}: {address!r} has ended")
        self._names[name] = address
        address.on_close(lambda closed: self._forget(name, closed))

    def unregister(self, name: str) -> None:
        """Forget ``name`` (no error if it is unknown)."""
        self._names.pop(name, None)

    def whereis(self, name: str) -> Address[Any] | None:
        """Return the address bound to ``name``, or ``None``."""
        return self._names.get(name)

    def names(self) -> list[str]:
        """Return the bound names, sorted."""
        return sorted(self._names)

    def _forget(self, name: str, address: Address[Any]) -> None:
        if self._names.get(name) is address:
            del self._names[name]
