"""A python-socketio client for tests: records every event, its connect error and disconnect."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import socketio


class Client:
    """A python-socketio client recording events and its disconnect."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self.changed = asyncio.Event()
        self.connect_error: Any = None
        self.disconnected = asyncio.Event()

        async def on_any(name: str, data: Any) -> None:
            self.events.append((name, data))
            self.changed.set()

        async def on_connect_error(data: Any) -> None:
            self.connect_error = data

        async def on_disconnect(*_: Any) -> None:
            self.disconnected.set()

        self.sio.on("*", on_any)
        self.sio.on("connect_error", on_connect_error)
        self.sio.on("disconnect", on_disconnect)

    async def connect(self, url: str, token: str | None) -> None:
        auth = {"token": token} if token is not None else None
        await self.sio.connect(url, auth=auth, transports=["websocket"])

    async def wait_until(self, predicate: Any) -> None:
        while not predicate(self.events):
            self.changed.clear()
            await self.changed.wait()

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()

    def of(self, name: str, server_id: str | None = None) -> list[dict[str, Any]]:
        """The payloads of ``name`` events (for ``server_id``), in arrival order."""
        return [
            data
            for event, data in self.events
            if event == name and (server_id is None or data.get("serverId") == server_id)
        ]

    async def wait_for(
        self, name: str, server_id: str | None, predicate: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any]:
        """Wait for the first ``name`` event (for ``server_id``) matching ``predicate``."""
        while True:
            for data in self.of(name, server_id):
                if predicate(data):
                    return data
            self.changed.clear()
            await self.changed.wait()
