"""Store errors.

StoreError
 +-- Conflict       (a unique name/id is taken, a role is still in use, a built-in is touched)
 +-- SchemaTooNew   (the database was written by a newer Citadel)
"""

from __future__ import annotations


class StoreError(Exception):
    """Root of the store's errors."""


class Conflict(StoreError):
    """The change conflicts with what is stored (taken name, role in use, built-in role)."""


class SchemaTooNew(StoreError):
    """The database schema is newer than this Citadel understands."""
