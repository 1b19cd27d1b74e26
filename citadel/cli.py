"""Command line entry point (placeholder until the serve command lands)."""

from __future__ import annotations


def main() -> None:
    raise SystemExit("citadel: not built yet")
