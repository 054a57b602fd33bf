"""The server's frames as the models write them: what is sent, what is left out, and reading them back."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from app.core.events import Exit, Input, Result, RunException, RunLimits
from app.protocol import (
    ErrorFrame,
    ExitFrame,
    FileFrame,
    ImageFrame,
    Limits,
    QueuedFrame,
    RunAnswer,
    StartedFrame,
    StdoutFrame,
    parse_server_frame,
)
from app.server.frames import sequenced

LIMITS = Limits(timeout_s=10, memory_mb=128, output_bytes=1_000_000, pids=64)


def test_started_carries_the_tokens_and_a_watchers_copy_does_not_carry_the_token() -> None:
    started = StartedFrame(id="r1", limits=LIMITS, token="T", watch_token="W")
    assert started.wire() == {
        "type": "started",
        "id": "r1",
        "limits": {"timeout_s": 10, "memory_mb": 128, "output_bytes": 1_000_000, "pids": 64},
        "token": "T",
        "watch_token": "W",
    }
    watchers = started.model_copy(update={"token": None}).wire()
    assert "token" not in watchers and watchers["watch_token"] == "W"


def test_seq_is_sent_when_set_and_last_for_people_reading_logs() -> None:
    assert StdoutFrame(data="a\n").wire() == {"type": "stdout", "data": "a\n"}
    assert list(StdoutFrame(data="a\n", seq=3).wire()) == ["type", "data", "seq"]
    assert json.loads(StdoutFrame(data="a\n", seq=3).model_dump_json()) == {"type": "stdout", "data": "a\n", "seq": 3}
    assert "seq" not in QueuedFrame(position=1).wire()


def test_exit_always_sends_its_nulls_and_files_truncated_only_when_true() -> None:
    frame = ExitFrame(
        reason="timeout", exit_code=None, signal=None, duration_ms=10_000, stdout_bytes=0, stderr_bytes=0,
        truncated=False, seq=4,
    ).wire()  # fmt: skip
    assert frame["exit_code"] is None and frame["signal"] is None
    assert frame["cpu_ms"] is None and frame["memory_peak_bytes"] is None
    assert "files_truncated" not in frame and "exception" not in frame and "session_alive" not in frame


def test_an_omitted_image_or_file_has_no_data() -> None:
    image = ImageFrame(mime="image/png", omitted="too_large", width=640, height=480, seq=2).wire()
    assert image == {
        "type": "image",
        "mime": "image/png",
        "width": 640,
        "height": 480,
        "omitted": "too_large",
        "seq": 2,
    }
    file = FileFrame(path="big.bin", size=10**9, mime="application/octet-stream", omitted="too_large").wire()
    assert "data" not in file and file["omitted"] == "too_large"
    sent = FileFrame(path="a.txt", size=1, mime="text/plain", data="YQ==").wire()
    assert sent["data"] == "YQ==" and "omitted" not in sent


def test_the_http_answer_leaves_out_error_only_for_a_plain_exit() -> None:
    plain = RunAnswer(
        output="4\n", stdout="4\n", stderr="", exit_code=0, signal=None, reason="exit", duration_ms=3, truncated=False
    ).wire()
    assert "error" not in plain and plain["images"] == [] and plain["files"] == [] and plain["cpu_ms"] is None
    timed = RunAnswer(
        output="", stdout="", stderr="", exit_code=None, signal=None, reason="timeout", duration_ms=1000,
        truncated=False, error="Execution timed out after 1 second.",
    ).wire()  # fmt: skip
    assert timed["error"].startswith("Execution timed out")


def test_reading_frames_back_ignores_what_it_does_not_know() -> None:
    assert parse_server_frame('{"type": "hologram"}') is None
    frame = parse_server_frame('{"type": "stdout", "data": "x", "seq": 1, "colour": "red"}')
    assert frame == StdoutFrame(data="x", seq=1)
    error = parse_server_frame({"type": "error", "code": "not_found", "message": "no such run"})
    assert isinstance(error, ErrorFrame) and error.code == "not_found"


@pytest.mark.parametrize(
    "raw",
    ['{"type": "stdout"}', '{"type": "exit", "reason": "exploded"}', '{"type": "stdout", "data": "x", "seq": 0}', "[]"],
)
def test_a_frame_that_breaks_the_contract_is_a_value_error(raw: str) -> None:
    with pytest.raises((ValidationError, ValueError)):
        parse_server_frame(raw)


@pytest.mark.parametrize(("seconds", "sentence"), [(1, "1 second"), (10, "10 seconds"), (0.5, "0.5 seconds")])
def test_the_timeout_sentence_counts_its_seconds_right(seconds: float, sentence: str) -> None:
    exit_ = Exit("timeout", None, None, 1000, 0, 0, False)
    assert exit_.sentence(RunLimits(seconds, 128, 1000, 64)) == f"Execution timed out after {sentence}."


def test_v3_frames_from_events_leave_out_what_does_not_apply_and_never_fail_on_a_lone_surrogate() -> None:
    assert sequenced(Input("é\ud800", eof=True), 2).wire() == {
        "type": "input",
        "data": "é\ufffd\ufffd\ufffd",
        "eof": True,
        "seq": 2,
    }
    assert json.loads(sequenced(Result("'\udcff'"), 3).model_dump_json())["text"] == "'\ufffd\ufffd\ufffd'"
    failed = Exit("exit", 1, None, 5, 0, 10, False, exception=RunException("ValueError", "bad \udcff", 3))
    frame = sequenced(failed, 4).wire()
    assert frame["exception"] == {"name": "ValueError", "value": "bad \ufffd\ufffd\ufffd", "line": 3}
    assert "session_alive" not in frame and "files_truncated" not in frame
    in_session = Exit("exit", 0, None, 5, 0, 0, False, session_alive=False)
    assert sequenced(in_session, 5).wire()["session_alive"] is False
