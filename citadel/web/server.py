"""The HTTP server as a supervised actor: uvicorn serving REST and Socket.IO on one socket.

The listening socket is bound by Citadel before the tree starts, so a port in use is a clear
start-up error, and a restarted HTTP actor serves the same socket again. uvicorn's own signal
handling is disabled: signals belong to ``citadel serve``, which stops the whole tree in order.

Logging of python-socketio and python-engineio (`configure_socketio_logging`): left alone, a
client sending a bad ``EIO=3`` or ``sid=bogus`` got an ERROR printed twice (engineio adds its own
stderr handler, and the record also reached the root handler). Any unauthenticated client can
cause those, so they are the client's fault, not ours: each kind is now logged once per process
at WARNING (engineio already demotes repeats to INFO, which is below our level) and only through
the root handlers.
"""

from __future__ import annotations

import contextlib
import logging
import socket
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


class _ClientErrorsAsWarnings(logging.Filter):
    """Demote the first report of a client's protocol error from ERROR to WARNING."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg
        client_error = isinstance(message, str) and message.endswith(_ONCE_SUFFIX)
        if record.levelno >= logging.ERROR and client_error:
            record.msg = str(message).removesuffix(_ONCE_SUFFIX)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def configure_socketio_logging() -> None:
    """Route python-socketio/engineio logs through the root handlers once, client errors as
    warnings. Call before the Socket.IO server is created; calling it again changes nothing."""
    for name in SOCKETIO_LOGGERS:
        logger = logging.getLogger(name)
        # A level set here also stops engineio from adding its own stderr handler.
        logger.setLevel(SOCKETIO_LOG_LEVEL)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:  # engineio's default, a duplicate
                logger.removeHandler(handler)
        if not any(isinstance(f, _ClientErrorsAsWarnings) for f in logger.filters):
            logger.addFilter(_ClientErrorsAsWarnings())


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
