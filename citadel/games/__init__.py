"""Game-specific knowledge: launch lines, log grammars, RCON text shapes, file layouts.

Each game lives in its own subpackage (``dayz``). Nothing outside a game subpackage parses that
game's text; the servers and realtime layers only see the typed results.
"""

from __future__ import annotations
