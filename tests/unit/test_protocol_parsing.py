"""PROTOCOL.md's client frames, parsed without any I/O: what is accepted, and what is refused with which code."""

from __future__ import annotations

import json
import math

import pytest

from app.errors import ERROR_TABLE, BadMessage, Busy, CodeTooLarge, Internal, MessageTooLarge, SCEError, Unavailable
from app.protocol import (
    KillFrame,
    RunRequest,
    StdinFrame,
    effective_timeout,
    load_json_object,
    parse_client_frame,
    parse_run_fields,
)
from app.settings import Settings


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(code_max_bytes=10, max_message_bytes=1024, timeout_s=10, timeout_max_s=60)


def parse(obj: object, settings: Settings) -> object:
    return parse_client_frame(json.dumps(obj), settings)


# --- run ----------------------------------------------------------------------------------------


def test_minimal_run_frame(settings: Settings) -> None:
    assert parse({"type": "run", "code": "print(1)"}, settings) == RunRequest(code="print(1)")


def test_run_frame_with_stdin_and_timeout(settings: Settings) -> None:
    frame = parse({"type": "run", "code": "x", "stdin": "a\nb", "timeout": 3}, settings)
    assert frame == RunRequest(code="x", stdin="a\nb", timeout=3.0)
    assert isinstance(frame, RunRequest) and isinstance(frame.timeout, float)


def test_run_frame_null_optionals_are_absent(settings: Settings) -> None:
    assert parse({"type": "run", "code": "x", "stdin": None, "timeout": None}, settings) == RunRequest(code="x")


def test_run_frame_ignores_unknown_fields(settings: Settings) -> None:
    assert parse({"type": "run", "code": "x", "colour": "blue"}, settings) == RunRequest(code="x")


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "run"},
        {"type": "run", "code": None},
        {"type": "run", "code": 5},
        {"type": "run", "code": ["print(1)"]},
        {"type": "run", "code": "x", "stdin": 5},
        {"type": "run", "code": "x", "stdin": ["a"]},
        {"type": "run", "code": "x", "timeout": "5"},
        {"type": "run", "code": "x", "timeout": True},
        {"type": "run", "code": "x", "timeout": 0},
        {"type": "run", "code": "x", "timeout": -1},
        {"type": "run", "code": "x", "timeout": [1]},
    ],
    ids=repr,
)
def test_run_frame_wrong_field_types_are_bad_message(frame: dict[str, object], settings: Settings) -> None:
    with pytest.raises(BadMessage):
        parse(frame, settings)


def test_infinite_timeout_is_bad_message(settings: Settings) -> None:
    # 1e999 is valid JSON and parses to inf
    with pytest.raises(BadMessage):
        parse_client_frame('{"type": "run", "code": "x", "timeout": 1e999}', settings)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_constants_are_not_json(constant: str, settings: Settings) -> None:
    with pytest.raises(BadMessage):
        parse_client_frame('{"type": "run", "code": "x", "timeout": ' + constant + "}", settings)


def test_code_at_the_limit_is_accepted(settings: Settings) -> None:
    assert parse({"type": "run", "code": "x" * 10}, settings) == RunRequest(code="x" * 10)


def test_code_over_the_limit_is_code_too_large(settings: Settings) -> None:
    with pytest.raises(CodeTooLarge):
        parse({"type": "run", "code": "x" * 11}, settings)


def test_code_limit_counts_utf8_bytes_not_characters(settings: Settings) -> None:
    with pytest.raises(CodeTooLarge):
        parse({"type": "run", "code": "é" * 6}, settings)  # 6 characters, 12 bytes


def test_run_fields_of_an_http_body(settings: Settings) -> None:
    # the HTTP body is a run frame without "type"
    assert parse_run_fields({"code": "x", "stdin": "in"}, settings) == RunRequest(code="x", stdin="in")
    with pytest.raises(BadMessage):
        parse_run_fields({"stdin": "in"}, settings)


# --- stdin and kill -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ({"type": "stdin", "data": "abc"}, StdinFrame(data="abc", eof=False)),
        ({"type": "stdin", "data": "abc", "eof": True}, StdinFrame(data="abc", eof=True)),
        ({"type": "stdin", "eof": True}, StdinFrame(data=None, eof=True)),
        ({"type": "stdin"}, StdinFrame(data=None, eof=False)),
        ({"type": "stdin", "data": None, "eof": None}, StdinFrame(data=None, eof=False)),
        ({"type": "stdin", "data": ""}, StdinFrame(data="", eof=False)),
    ],
    ids=repr,
)
def test_stdin_frames(frame: dict[str, object], expected: StdinFrame, settings: Settings) -> None:
    assert parse(frame, settings) == expected


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "stdin", "data": 5},
        {"type": "stdin", "data": ["a"]},
        {"type": "stdin", "eof": "yes"},
        {"type": "stdin", "eof": 1},
    ],
    ids=repr,
)
def test_stdin_wrong_field_types_are_bad_message(frame: dict[str, object], settings: Settings) -> None:
    with pytest.raises(BadMessage):
        parse(frame, settings)


def test_kill_frame(settings: Settings) -> None:
    assert parse({"type": "kill"}, settings) == KillFrame()
    assert parse({"type": "kill", "why": "bored"}, settings) == KillFrame()


# --- what is not a frame -----------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["", "{", "run", "{'type': 'run'}", '{"type": "run",}'], ids=repr)
def test_not_json_is_bad_message(raw: str, settings: Settings) -> None:
    with pytest.raises(BadMessage):
        parse_client_frame(raw, settings)


@pytest.mark.parametrize("raw", ["[]", '["run"]', '"run"', "1", "null", "true"])
def test_not_an_object_is_bad_message(raw: str, settings: Settings) -> None:
    with pytest.raises(BadMessage):
        parse_client_frame(raw, settings)


@pytest.mark.parametrize(
    "frame",
    [{}, {"code": "x"}, {"type": "RUN", "code": "x"}, {"type": "exec"}, {"type": 1}, {"type": None}],
    ids=repr,
)
def test_missing_or_unknown_type_is_bad_message(frame: dict[str, object], settings: Settings) -> None:
    with pytest.raises(BadMessage):
        parse(frame, settings)


def test_invalid_utf8_bytes_are_bad_message(settings: Settings) -> None:
    with pytest.raises(BadMessage):
        parse_client_frame(b'{"type": "run", "code": "\xff"}', settings)


def test_deeply_nested_json_is_bad_message_not_a_crash() -> None:
    roomy = Settings(max_message_bytes=8 * 1024 * 1024)
    with pytest.raises(BadMessage):
        parse_client_frame("[" * 200_000 + "]" * 200_000, roomy)


def test_message_over_the_limit_is_message_too_large(settings: Settings) -> None:
    raw = json.dumps({"type": "stdin", "data": "x" * 2000})
    with pytest.raises(MessageTooLarge):
        parse_client_frame(raw, settings)
    with pytest.raises(MessageTooLarge):
        parse_client_frame(raw.encode(), settings)


def test_message_size_is_checked_before_json(settings: Settings) -> None:
    # an oversized frame is message_too_large even when it is not JSON at all
    with pytest.raises(MessageTooLarge):
        load_json_object("x" * 2000, settings)


def test_message_limit_counts_utf8_bytes(settings: Settings) -> None:
    raw = json.dumps({"type": "stdin", "data": "é" * 600}, ensure_ascii=False)  # ~620 chars, ~1220 bytes
    assert len(raw) < 1024 < len(raw.encode())
    with pytest.raises(MessageTooLarge):
        parse_client_frame(raw, settings)


def test_message_at_the_limit_is_accepted(settings: Settings) -> None:
    prefix = '{"type": "stdin", "data": "'
    raw = prefix + "x" * (1024 - len(prefix) - 2) + '"}'
    assert len(raw) == 1024
    assert parse_client_frame(raw, settings) == StdinFrame(data="x" * (1024 - len(prefix) - 2))


# --- timeouts -------------------------------------------------------------------------------------


def test_effective_timeout(settings: Settings) -> None:
    assert effective_timeout(None, settings) == 10
    assert effective_timeout(2.5, settings) == 2.5
    assert effective_timeout(60, settings) == 60
    assert effective_timeout(61, settings) == 60
    assert effective_timeout(1e9, settings) == 60
    assert not math.isinf(effective_timeout(1e300, settings))


# --- the error table ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code", "close_code", "http_status"),
    [
        (BadMessage(), "bad_message", 1008, 400),
        (CodeTooLarge(), "code_too_large", 1009, 413),
        (MessageTooLarge(), "message_too_large", 1009, 413),
        (Busy(), "busy", 1013, 503),
        (Unavailable(), "unavailable", 1011, 503),
        (Internal(), "internal", 1011, 500),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_error_codes_map_to_protocol_close_codes(error: SCEError, code: str, close_code: int, http_status: int) -> None:
    assert error.code == code
    assert (error.close_code, error.http_status) == (close_code, http_status)
    assert ERROR_TABLE[code].close_code == close_code
    frame = error.to_frame()
    assert frame["type"] == "error" and frame["code"] == code
    assert isinstance(frame["message"], str) and frame["message"]
