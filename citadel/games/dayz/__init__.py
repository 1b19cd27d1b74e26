"""DayZ formats: pure parsers over the server's text, and the log-file tailer.

Modules (import from them directly; this package re-exports nothing so importing one parser
never drags in the others):

* ``rpt``: RPT / script-log entries, levels, milestones (ready, FPS, script errors).
* ``adm``: admin log (ADM) lines, player prefixes, chat, hits, kills, player lists.
* ``rcon_text``: BattlEye RCon command outputs (``players``, ``admins``, ``bans``) and the
  server-message catalogue.
* ``logfiles``: which files in a profile directory belong to the current process.
* ``tail``: the byte-to-line splitter and the ``FileTail`` reader.
* ``beconfig``: rendering and atomically writing ``beserver_x64.cfg``.
* ``ids``: the BattlEye GUID and the DayZ player id of a Steam64 id.

Every parser accepts arbitrary text and never raises on garbage: what it cannot read comes back
as an ``Unknown``-style record or ``None``.
"""

from __future__ import annotations
