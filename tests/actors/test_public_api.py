"""The public surface of ``actors`` and its dependency rule (anyio and the stdlib only)."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

import actors
import actors._exceptions
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


@pytest.mark.parametrize(
    ("module", "name"),
    [("actors", name) for name in DOCUMENTED]
    + [("actors.testing", name) for name in actors.testing.__all__],
)
def test_every_public_name_is_ours_and_has_a_summary(module: str, name: str) -> None:
    obj = getattr(importlib.import_module(module), name)
    # Defined in this package (not a re-exported anyio name), with its own docstring.
    assert obj.__module__.split(".")[0] == "actors"
    own_doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else obj.__doc__
    assert own_doc, f"{module}.{name} has no docstring"
    assert own_doc.strip().splitlines()[0].rstrip().endswith("."), "a one-line summary"


def test_testing_module_surface() -> None:
    assert actors.testing.__all__ == [
        "AutojumpSelector",
        "Crash",
        "Probe",
        "ReportCapture",
        "SequenceRandom",
        "virtual_time_backend",
    ]


ERRORS = [
    "ActorError",
    "ActorExited",
    "ActorKilled",
    "CallTimeout",
    "MailboxFull",
    "NameTaken",
    "RestartIntensityExceeded",
    "StartFailed",
    "TooManyChildren",
    "UnknownChild",
]


def test_every_error_is_an_actor_error() -> None:
    exported = [
        name
        for name in actors.__all__
        if isinstance(getattr(actors, name), type)
        and issubclass(getattr(actors, name), BaseException)
    ]
    assert exported == ERRORS  # none forgotten here, none missing from the package
    for name in ERRORS:
        assert issubclass(getattr(actors, name), actors.ActorError)
        assert name in (actors._exceptions.__doc__ or "")  # drawn in the tree
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
