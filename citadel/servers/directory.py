"""The servers Citadel knows, as the REST API and the connect snapshot see them.

Until the per-server supervisors land (issue 4) every known server sits ``stopped``; the
fleet will take over this interface.
"""

from __future__ import annotations

from typing import Literal

from citadel.config import ServerConfig
from citadel.messages import ServerStatusEvent, utc_timestamp
from citadel.messages.rest import ServerStatusView, ServerView

Source = Literal["config", "api", "demo"]


class StaticDirectory:
    """Servers from the config file, the store and the demo, each ``stopped``."""

    def __init__(self, servers: list[tuple[ServerConfig, Source]]) -> None:
        self._servers = {config.id: (config, source) for config, source in servers}

    def configs(self) -> list[ServerConfig]:
        return [config for config, _ in self._servers.values()]

    def list_servers(self) -> list[ServerView]:
        return [self._view(c, s) for c, s in self._servers.values()]

    def get_server(self, server_id: str) -> ServerView | None:
        entry = self._servers.get(server_id)
        return None if entry is None else self._view(*entry)

    async def server_status(self, server_id: str) -> ServerStatusView | None:
        if server_id not in self._servers:
            return None
        return ServerStatusView(server_id=server_id, status="stopped", seq=0)

    def initial_events(self) -> list[ServerStatusEvent]:
        """The ``serverStatus`` each server starts with (seq 0), for the connect snapshot."""
        now = utc_timestamp()
        return [
            ServerStatusEvent(
                server_id=server_id, status="stopped", seq=0, timestamp=now, reason="not started"
            )
            for server_id in self._servers
        ]

    @staticmethod
    def _view(config: ServerConfig, source: Source) -> ServerView:
        return ServerView(
            id=config.id, name=config.name, game=config.game, status="stopped", source=source
        )
