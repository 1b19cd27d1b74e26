"""Entry point: ``dayz-sim`` / ``python -m dayzsim`` with DayZ's command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio

from dayzsim._config import parse_args, parse_env
from dayzsim._server import Simulator


def main(argv: list[str] | None = None) -> None:
    """Run the simulator with DayZ's flags; exits with the server's exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    simulator = Simulator(parse_args(args_list), parse_env(os.environ), args_list, Path.cwd())
    code = anyio.run(simulator.run, backend="asyncio")
    raise SystemExit(code)


if __name__ == "__main__":
    main()
