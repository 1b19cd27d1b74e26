"""The HTTP server as a supervised actor: uvicorn serving REST and Socket.IO on one socket.

The listening socket is bound by Citadel before the tree starts, so a port in use is a clear
start-up error, and a restarted HTTP actor serves the same socket again. uvicorn's own signal
handling is disabled: signals belong to ``citadel serve``, which stops the whole tree in order.

Logging of python-socketio and python-engineio (`configure_socketio_logging`). Anyone who can
reach the port can make these libraries log (the Engine.IO handshake comes before any token),
so what a client causes is logged once per kind per process at WARNING, without a traceback,
and repeats at INFO (below the level of these loggers, so not shown), all through the root
handlers only (engineio also added a private stderr handler, so each record came out twice).
One filter, `_ClientErrors`, sorts the records:

* engineio/socketio's own once-per-kind reports (``Invalid session bogus``, an old ``EIO=3``):
  logged at ERROR the first time with a suffix saying repeats go to INFO (which they already
  do, per server). The first is demoted to WARNING.
* their catch-all handler reports, ``post request handler error`` (an undecodable polling
  payload: not UTF-8, not a packet, too many packets) and ``message async handler error`` (a
  Socket.IO packet that does not decode or cannot be dispatched), logged at ERROR with a
  traceback for every request. The filter reads where the exception arose: a ``ValueError``
  (which JSON, UTF-8 and base64 errors are), ``IndexError``, ``KeyError``, ``TypeError`` or
  ``RecursionError`` whose traceback (and those of the exceptions chained to it) holds no
  frame of Citadel's own packages (``citadel``, ``actors``) was raised by the libraries'
  decoding or dispatch of what the client sent: the client's fault. Its kind is the report
  and the exception type (the packet limit of a POST is a kind of its own); the first is a
  WARNING naming both, without the traceback. Anything else (another exception type, or one
  raised in or through Citadel's code, e.g. our connect handling or the outbox) is a bug on
  our side and is left alone: ERROR with its traceback, every time.
* their per-request warnings that a client can trigger at will (an ack nobody waits for, an
  event for a namespace it did not join, an HTTP method engineio does not serve): once per kind
  (the message's template) at WARNING, then INFO.

Whatever a client put into the text of these records (a session id, a namespace) is cut to a
bounded length with control characters escaped, so it cannot forge log lines.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any, Final

import anyio
import uvicorn

from actors import Actor, ExitKind

STARTUP_TIMEOUT: Final = 10.0
SHUTDOWN_GRACE: Final = 5
SOCKETIO_LOGGERS: Final = ("engineio.server", "socketio.server")
SOCKETIO_LOG_LEVEL: Final = logging.WARNING
#: The suffix engineio/socketio add to the first report of each kind of client error.
_ONCE_SUFFIX: Final = " (further occurrences of this error will be logged with level INFO)"
#: engineio's catch-all reports of an exception while handling a polling POST or a message.
_HANDLER_ERRORS: Final = frozenset(
    {"post request handler error", "message async handler error", "message handler error"}
)
#: What the libraries' decoders raise on bad input (JSONDecodeError, UnicodeDecodeError and
#: binascii.Error are ValueErrors; the json module raises RecursionError on JSON nested about
#: 1,000 deep, a 2 kB body).
_DECODE_ERRORS: Final = (ValueError, IndexError, KeyError, TypeError, RecursionError)
#: Exception texts that are a kind of their own (the rest are one kind per type): the packet
#: limit of a polling POST, which a client that emits events in a burst can hit.
_OWN_KINDS: Final = frozenset({"Too many packets in payload"})
#: Per-request warnings (message templates) that any client can trigger at will.
_CLIENT_WARNINGS: Final = frozenset(
    {
        "Unknown callback received, ignoring.",
        "%s is not connected to namespace %s",
        "Method %s not supported",
    }
)
#: Citadel's own top-level packages: an exception raised in or through them is our bug.
_OWN_PACKAGES: Final = frozenset({"citadel", "actors"})
_MAX_CLIENT_TEXT: Final = 200


def raised_by_client_input(error: BaseException) -> bool:
    """Did python-engineio/socketio raise ``error`` decoding what a client sent?

    True for a decoding error type whose traceback, and that of every exception chained to it,
    runs through no module of Citadel's own packages.
    """
    if not isinstance(error, _DECODE_ERRORS):
        return False
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        tb = current.__traceback__
        while tb is not None:
            module = tb.tb_frame.f_globals.get("__name__")
            if isinstance(module, str) and module.partition(".")[0] in _OWN_PACKAGES:
                return False
            tb = tb.tb_next
        current = current.__cause__ or current.__context__
    return True


def _clip(text: str) -> str:
    """Cut client-controlled text to a bounded length, control characters escaped."""
    if len(text) > _MAX_CLIENT_TEXT:
        text = text[:_MAX_CLIENT_TEXT] + "..."
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class _ClientErrors(logging.Filter):
    """Log what a client caused once per kind at WARNING, without traceback; repeats at INFO.

    One instance serves both loggers, so "once" is per process. A record demoted to INFO is
    dropped unless its logger is enabled for INFO, as if it had been logged at INFO.
    """

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[tuple[str, ...]] = set()
        self._lock = threading.Lock()

    def forget(self) -> None:
        """Treat every kind as not yet seen (for tests)."""
        with self._lock:
            self._seen.clear()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg
        if not isinstance(message, str):
            return True
        if message.endswith(_ONCE_SUFFIX):
            if record.levelno >= logging.ERROR:
                # The library keeps the count: this is the first of its kind.
                record.msg, record.args = message.removesuffix(_ONCE_SUFFIX), ()
                self._rewrite(record, logging.WARNING)
            return True
        if message in _CLIENT_WARNINGS and record.levelno == logging.WARNING:
            return self._once(record, (record.name, message))
        exc_info = record.exc_info
        if message in _HANDLER_ERRORS and exc_info and exc_info[1] is not None:
            error = exc_info[1]
            if not raised_by_client_input(error):
                return True  # a bug on our side: ERROR with its traceback
            kind_of = type(error)
            name = kind_of.__qualname__
            if kind_of.__module__ != "builtins":
                name = f"{kind_of.__module__}.{name}"
            text = str(error)
            kind = (record.name, message, name, text if text in _OWN_KINDS else "")
            record.msg = f"{message} caused by a client: {name}: {text}"
            record.args = ()
            record.exc_info, record.exc_text = None, None
            return self._once(record, kind)
        return True

    def _once(self, record: logging.LogRecord, kind: tuple[str, ...]) -> bool:
        with self._lock:
            first = kind not in self._seen
            self._seen.add(kind)
        if first:
            self._rewrite(record, logging.WARNING)
            return True
        self._rewrite(record, logging.INFO)
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)

    @staticmethod
    def _rewrite(record: logging.LogRecord, level: int) -> None:
        record.msg, record.args = _clip(record.getMessage()), ()
        record.levelno, record.levelname = level, logging.getLevelName(level)


_client_errors: Final = _ClientErrors()


def configure_socketio_logging() -> None:
    """Route python-socketio/engineio logs through the root handlers once, what clients
    cause as one warning per kind. Call before the Socket.IO server is created; calling it
    again changes nothing."""
    for name in SOCKETIO_LOGGERS:
        logger = logging.getLogger(name)
        # A level set here also stops engineio from adding its own stderr handler.
        logger.setLevel(SOCKETIO_LOG_LEVEL)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:  # engineio's default, a duplicate
                logger.removeHandler(handler)
        if _client_errors not in logger.filters:
            logger.addFilter(_client_errors)


def forget_client_errors() -> None:
    """Log the next client error of every kind at WARNING again (tests run many servers)."""
    _client_errors.forget()


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind and listen on ``host:port`` (port 0 picks a free port).

    Raises:
        OSError: The address is in use or not available, with a message naming it.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.setblocking(False)
    except OSError as error:
        sock.close()
        raise OSError(error.errno, f"cannot listen on {host}:{port}: {error.strerror}") from None
    return sock


class HttpServer(Actor[None]):
    """Runs uvicorn on an already bound socket for the life of the actor."""

    def __init__(self, app: Any, sock: socket.socket) -> None:
        self.app = app
        self.sock = sock
        self._stopping = False

    async def on_start(self) -> None:
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_level="warning",
            access_log=False,
            ws="wsproto",
            http="h11",
            timeout_graceful_shutdown=SHUTDOWN_GRACE,
            # Small frames dominate; deflating each one costs more CPU than it saves bytes.
            ws_per_message_deflate=False,
        )
        self.server = _Server(config)
        self._done = anyio.Event()
        self.start_soon(self._serve)
        with anyio.fail_after(STARTUP_TIMEOUT):
            while not self.server.started:  # noqa: ASYNC110  # uvicorn offers no event for this
                await anyio.sleep(0.005)

    async def _serve(self) -> None:
        # uvicorn closes the socket it serves; a duplicate keeps ours for the next incarnation.
        try:
            await self.server.serve(sockets=[self.sock.dup()])
        finally:
            self._done.set()
        if not self._stopping:
            raise RuntimeError("the HTTP server stopped on its own")

    async def on_stop(self, kind: ExitKind) -> None:
        self._stopping = True
        self.server.should_exit = True
        with anyio.move_on_after(SHUTDOWN_GRACE + 1):
            await self._done.wait()
