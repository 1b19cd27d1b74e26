"""Every default of the library in one place (OTP's values where OTP has one)."""

from __future__ import annotations

from typing import Final

#: Default time a `call` waits for its reply (OTP's gen_server default).
CALL_TIMEOUT: Final = 5.0
#: Default number of ordinary messages a mailbox holds (control messages do not count).
MAILBOX_CAPACITY: Final = 1000
#: Default restart intensity: at most this many restarts ...
INTENSITY: Final = 3
#: ... within this many seconds (OTP's supervisor defaults: 1 in 5; we allow a few more).
PERIOD: Final = 5.0
#: Time a child gets to stop after being asked, before it is cancelled (OTP: 5000 ms).
SHUTDOWN_TIMEOUT: Final = 5.0
#: Backoff between restarts: first delay, ceiling, growth factor and jitter.
BACKOFF_BASE: Final = 0.1
BACKOFF_CAP: Final = 30.0
BACKOFF_FACTOR: Final = 2.0
BACKOFF_JITTER: Final = 0.2
#: A child that stayed up this long has its backoff attempt counter reset.
BACKOFF_RESET_AFTER: Final = 60.0
