"""The rule that tells a client's protocol error from a bug of ours (`citadel.web.server`)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from engineio import payload

from citadel.web.server import _ClientErrors, _clip, raised_by_client_input


def caught(function: Callable[..., object], *args: object) -> Exception:
    try:
        function(*args)
    except Exception as error:
        return error
    raise AssertionError("nothing raised")


def test_an_error_raised_decoding_a_client_payload_is_the_clients() -> None:
    assert raised_by_client_input(caught(payload.Payload, None, "zzz"))
    assert raised_by_client_input(caught(payload.Payload, None, "\x1e".join("6" * 17)))


def test_an_error_raised_in_citadels_code_is_ours() -> None:
    error = caught(_clip, None)  # a TypeError, raised inside citadel.web.server
    assert isinstance(error, TypeError)
    assert not raised_by_client_input(error)


def test_a_library_error_chained_to_one_of_ours_is_ours() -> None:
    def library_code() -> None:
        try:
            _clip(None)  # type: ignore[arg-type]
        except TypeError:
            payload.Payload(encoded_payload="zzz")

    error = caught(library_code)
    assert isinstance(error, ValueError)
    assert not raised_by_client_input(error)


def test_other_exception_types_are_never_the_clients() -> None:
    assert not raised_by_client_input(RuntimeError("no traceback at all"))


def record(logger: str, message: str, error: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(error), error, error.__traceback__) if error is not None else None
    return logging.LogRecord(logger, logging.ERROR, __file__, 1, message, (), exc_info)


@pytest.mark.parametrize("info_enabled", [False, True])
def test_first_of_a_kind_is_a_warning_then_info(info_enabled: bool) -> None:
    name = f"tests.socketio-logging.{info_enabled}"
    logging.getLogger(name).setLevel(logging.INFO if info_enabled else logging.WARNING)
    errors = _ClientErrors()
    first = record(name, "post request handler error", caught(payload.Payload, None, "zzz"))
    assert errors.filter(first)
    assert (first.levelname, first.exc_info, first.getMessage()) == (
        "WARNING",
        None,
        "post request handler error caused by a client: ValueError: "
        "invalid literal for int() with base 10: 'z'",
    )
    again = record(name, "post request handler error", caught(payload.Payload, None, "yyy"))
    assert errors.filter(again) is info_enabled
    assert again.levelname == "INFO"
    # The packet limit is a kind of its own.
    limit = caught(payload.Payload, None, "\x1e".join("6" * 17))
    over = record(name, "post request handler error", limit)
    assert errors.filter(over)
    assert over.levelname == "WARNING"


def test_a_bug_keeps_its_level_and_traceback() -> None:
    errors = _ClientErrors()
    for _ in range(2):
        bug = record("engineio.server", "message async handler error", caught(_clip, None))
        assert errors.filter(bug)
        assert bug.levelname == "ERROR"
        assert bug.exc_info is not None
        assert bug.getMessage() == "message async handler error"


def test_client_text_is_clipped_and_escaped() -> None:
    assert _clip("Invalid session bogus") == "Invalid session bogus"
    assert _clip("a\nb\x1ec\u2028") == "a\\nb\\x1ec\\u2028"
    assert _clip("x" * 1000) == "x" * 200 + "..."
