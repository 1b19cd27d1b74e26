"""``citadel serve``: run the tree until SIGINT or SIGTERM, then stop it in order."""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import anyio

from citadel.app import open_citadel
from citadel.config import Config
from citadel.demo import demo_servers


@dataclass(frozen=True)
class ServeOptions:
    config: Config
    host: str
    port: int
    data_dir: Path
    demo: int = 0


def _banner(
    url: str, data_dir: Path, admin_password: str | None, password_file: Path | None = None
) -> str:
    lines = [
        f"Citadel is listening on {url}",
        f"  data dir : {data_dir}",
        f"  REST     : {url}/api  (OpenAPI: {url}/api/openapi.json)",
        f"  Socket.IO: io('{url}', {{ auth: {{ token }} }})",
        f"  a token  : curl -s -X POST {url}/api/auth/login -H 'content-type: application/json' "
        '-d \'{"username":"admin","password":"..."}\'',
        f"             or: citadel token --user admin --data-dir {data_dir}",
    ]
    if admin_password:
        lines.append(f"  first start: created user 'admin' with password {admin_password}")
        lines.append("               (change it with `citadel user passwd admin`)")
    if password_file is not None:
        lines.append(f"  the generated admin password is kept in {password_file} (mode 0600);")
        lines.append("               delete that file once you have noted or changed it")
    return "\n".join(lines)


async def serve(options: ServeOptions) -> None:
    """Run Citadel until a termination signal."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_citadel(
            options.config,
            data_dir=options.data_dir,
            host=options.host,
            port=options.port,
            demo=demo_servers(options.data_dir, options.demo) if options.demo else [],
        ) as citadel:
            banner = _banner(
                citadel.url,
                citadel.data_dir,
                citadel.admin_password,
                citadel.admin_password_file,
            )
            print(banner, flush=True)
            async for signum in signals:
                print(f"citadel: {signal.Signals(signum).name}: stopping", file=sys.stderr)
                break
