"""The public surface of ``actors`` and its dependency rule (anyio and the stdlib only)."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

import actors
import actors.testing

PACKAGE = Path(actors.__file__).parent

DOCUMENTED = [
    "Actor",
    "ActorError",
    "ActorExited",
    "ActorKilled",
    "Address",
    "Backoff",
    "CallTimeout",
    "ChildCounts",
    "ChildInfo",
    "ChildSpec",
    "DynamicSupervisor",
    "ExitKind",
    "MailboxFull",
    "MailboxPolicy",
    "MailboxStatistics",
    "NameTaken",
    "Overflow",
    "Registry",
    "Report",
    "ReportBus",
    "ReportKind",
    "Restart",
    "RestartIntensityExceeded",
    "StartFailed",
    "Strategy",
    "Supervisor",
    "SupervisorRef",
    "SupervisorStatistics",
    "TooManyChildren",
    "UnknownChild",
    "add_restart",
    "backoff_delay",
    "next_attempt",
    "open_actor",
    "open_supervisor",
]


def test_all_is_exactly_the_documented_surface_and_sorted() -> None:
    assert actors.__all__ == DOCUMENTED
    assert actors.__all__ == sorted(actors.__all__)


@pytest.mark.parametrize("name", DOCUMENTED)
def test_every_public_name_is_importable(name: str) -> None:
    module = importlib.import_module("actors")
    assert getattr(module, name) is not None


def test_testing_module_surface() -> None:
    assert actors.testing.__all__ == ["Crash", "Probe", "ReportCapture", "SequenceRandom"]
    for name in actors.testing.__all__:
        assert getattr(actors.testing, name) is not None


def test_every_error_is_an_actor_error() -> None:
    errors = [
        actors.MailboxFull,
        actors.ActorExited,
        actors.CallTimeout,
        actors.NameTaken,
        actors.StartFailed,
        actors.RestartIntensityExceeded,
        actors.TooManyChildren,
        actors.UnknownChild,
    ]
    for error in errors:
        assert issubclass(error, actors.ActorError)
    assert issubclass(actors.ActorError, Exception)


def _imports_of(source: str, filename: str = "<source>") -> set[str]:
    """Return the top-level package of every absolute import anywhere in ``source``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


SOURCES = sorted(PACKAGE.glob("*.py"))


def test_the_package_has_its_modules() -> None:
    names = {path.name for path in SOURCES}
    assert {"__init__.py", "_actor.py", "_supervisor.py", "testing.py"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_imports_only_anyio_and_the_stdlib(path: Path) -> None:
    imports = _imports_of(path.read_text(encoding="utf-8"), str(path))
    forbidden = {"asyncio", "trio", "citadel", "sniffio"} & imports
    assert not forbidden, f"{path.name} imports {sorted(forbidden)}"
    outside = {name for name in imports if name not in sys.stdlib_module_names}
    assert outside <= {"anyio"}, f"{path.name} imports {sorted(outside)}"


def test_the_import_checker_sees_nested_aliased_and_guarded_imports() -> None:
    source = (
        "import trio.lowlevel as tl\n"
        "from . import _defaults\n"
        "def f():\n    from asyncio import sleep\n"
        "if TYPE_CHECKING:\n    import sniffio\n"
    )
    assert _imports_of(source) == {"trio", "asyncio", "sniffio"}
