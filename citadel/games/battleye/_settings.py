"""Defaults and tunables of the BattlEye RCon client, in one place."""

from __future__ import annotations

from typing import Final

import msgspec

# --- defaults -------------------------------------------------------------------------------
#: An empty command goes out after this much command silence. BattlEye drops a client that sent
#: nothing for more than 45 s; 25 s leaves room for one lost keepalive plus its resends.
KEEPALIVE_INTERVAL: Final = 25.0
#: The link is dead after this many keepalive intervals with nothing received.
DEAD_AFTER_INTERVALS: Final = 3
#: The whole login exchange is bounded by this: the first login datagram and its three resends,
#: two seconds apart, each get their two seconds.
LOGIN_TIMEOUT: Final = 8.0
#: A command (or login) datagram is sent again after this long without a complete reply.
RESEND_INTERVAL: Final = 2.0
#: How many times one command datagram is sent again before giving up.
MAX_RESENDS: Final = 3
#: Server messages with the same (seq, text) inside this window are resends, not news. BattlEye
#: resends an unacknowledged message 5 times within 10 s.
MESSAGE_DEDUP_WINDOW: Final = 15.0
#: Upper bound on remembered (seq, text) pairs, whatever the window.
MESSAGE_DEDUP_CAPACITY: Final = 64
#: Commands in flight at once; far below 256 so a live sequence number is never reused.
MAX_IN_FLIGHT: Final = 8
#: UDP payload ceiling (65535 - IP and UDP headers), the same bound berconpy enforces.
MAX_DATAGRAM: Final = 65507
#: 'B' 'E' CRC32(4) 0xFF type seq: the bytes in front of a command's text.
COMMAND_HEADER: Final = 9
#: Reconnect backoff (run_forever): first delay, ceiling, jitter fraction, stable session length.
RECONNECT_BASE: Final = 1.0
RECONNECT_CAP: Final = 60.0
RECONNECT_JITTER: Final = 0.5
RECONNECT_RESET_AFTER: Final = 60.0
# ---------------------------------------------------------------------------------------------


class RConSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Timing and sizing of one RCon client; every field has a safe default."""

    keepalive_interval: float = KEEPALIVE_INTERVAL
    dead_after: float | None = None
    login_timeout: float = LOGIN_TIMEOUT
    resend_interval: float = RESEND_INTERVAL
    max_resends: int = MAX_RESENDS
    message_dedup_window: float = MESSAGE_DEDUP_WINDOW
    max_in_flight: int = MAX_IN_FLIGHT

    @property
    def dead_timeout(self) -> float:
        """Seconds without any valid packet after which the link counts as dead."""
        if self.dead_after is not None:
            return self.dead_after
        return self.keepalive_interval * DEAD_AFTER_INTERVALS

    @property
    def command_timeout(self) -> float:
        """Default bound on one command: the first send plus every resend."""
        return self.resend_interval * (self.max_resends + 1)
