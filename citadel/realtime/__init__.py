"""Socket.IO fan-out: who receives which event, encoded once, without letting one client lag all.

The engine (:class:`FanoutEngine`) serves python-socketio's protocol through its own outbound
path: each event is encoded once per variant and written to every recipient's transport, and a
lagging client's frames wait under the policy of :class:`ClientQueue`. See ``docs/realtime.md``.
"""

from __future__ import annotations

from ._engine import (
    DEFAULT_FLUSH_TURNS,
    DEFAULT_LAG_CHECK_INTERVAL,
    Authenticate,
    ConnectRefused,
    FanoutEngine,
    FanoutStatistics,
    RealtimeError,
    SnapshotProvider,
    build_asgi_app,
    drop_notice,
)
from ._frames import Frame, websocket_text_frame
from ._queue import ClientQueue, QueueLimits, Verdict
from ._rules import EVENT_PERMISSIONS, ClientScope, Outgoing, may_receive, select_variant

__all__ = [
    "DEFAULT_FLUSH_TURNS",
    "DEFAULT_LAG_CHECK_INTERVAL",
    "EVENT_PERMISSIONS",
    "Authenticate",
    "ClientQueue",
    "ClientScope",
    "ConnectRefused",
    "FanoutEngine",
    "FanoutStatistics",
    "Frame",
    "Outgoing",
    "QueueLimits",
    "RealtimeError",
    "SnapshotProvider",
    "Verdict",
    "build_asgi_app",
    "drop_notice",
    "may_receive",
    "select_variant",
    "websocket_text_frame",
]
