"""PROTOCOL.md's client frames, parsed without any I/O: what is accepted, and what is refused with which code."""

from __future__ import annotations

import base64
import json
import math
from pathlib import PurePosixPath

import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from app.errors import ERROR_TABLE, BadMessage, Busy, CodeTooLarge, Internal, MessageTooLarge, SCEError, Unavailable
from app.protocol import (
    InFile,
    KillFrame,
    ResumeFrame,
    RunRequest,
    StdinFrame,
    WatchFrame,
    effective_timeout,
    load_json_object,
    parse_client_frame,
    parse_run_fields,
    parse_session_request,
)
from app.server.frames import error_frame
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
    frame = error_frame(error).wire()
    assert frame["type"] == "error" and frame["code"] == code
    assert isinstance(frame["message"], str) and frame["message"]


# --- v2: runtime, stats, files in -------------------------------------------------------------

FILES = Settings(
    code_max_bytes=10,
    max_message_bytes=1024 * 1024,
    files_in_max_count=3,
    files_in_max_bytes=8,
    files_in_total_bytes=12,
)


def run_with_files(*files: dict[str, object]) -> object:
    return parse({"type": "run", "code": "x", "files": list(files)}, FILES)


def refusal(error_type: type[SCEError], *files: dict[str, object]) -> str:
    with pytest.raises(error_type) as caught:
        run_with_files(*files)
    return caught.value.message


def test_runtime_and_stats_are_taken_as_given(settings: Settings) -> None:
    frame = parse({"type": "run", "code": "x", "runtime": "scientific", "stats": True}, settings)
    assert frame == RunRequest(code="x", runtime="scientific", stats=True)
    assert parse({"type": "run", "code": "x", "runtime": None, "stats": None}, settings) == RunRequest(code="x")


@pytest.mark.parametrize(
    ("frame", "sentence"),
    [
        ({"type": "run", "code": "x", "runtime": 3}, "'runtime' must be a string"),
        ({"type": "run", "code": "x", "stats": "yes"}, "'stats' must be true or false"),
        ({"type": "run", "code": "x", "stats": 1}, "'stats' must be true or false"),
        ({"type": "run", "code": "x", "files": "a.txt"}, "'files' must be a list"),
        ({"type": "run", "code": "x", "files": {"path": "a"}}, "'files' must be a list"),
        ({"type": "run", "code": "x", "files": ["a.txt"]}, "files[0] must be an object"),
        ({"type": "run", "code": "x", "files": [{"content": "x"}]}, "files[0]: 'path' must be a string"),
        ({"type": "run", "code": "x", "files": [{"path": "a"}]}, "files[0]: 'content' must be a string"),
        ({"type": "run", "code": "x", "files": [{"path": "a", "content": 5}]}, "files[0]: 'content' must be a string"),
        (
            {"type": "run", "code": "x", "files": [{"path": "a", "content": "", "encoding": "hex"}]},
            "files[0]: 'encoding' must be 'utf-8' or 'base64'",
        ),
    ],
    ids=repr,
)
def test_v2_run_fields_wrong_types_say_which_field(frame: dict[str, object], sentence: str) -> None:
    with pytest.raises(BadMessage) as caught:
        parse(frame, FILES)
    assert sentence in caught.value.message


def test_files_are_decoded_in_order() -> None:
    frame = run_with_files(
        {"path": "data/in.csv", "content": "a,b\n"},
        {"path": "blob.bin", "content": "AAH/", "encoding": "base64"},
        {"path": "é.txt", "content": "é", "encoding": None},
    )
    assert isinstance(frame, RunRequest)
    assert frame.files == (
        InFile("data/in.csv", b"a,b\n"),
        InFile("blob.bin", b"\x00\x01\xff"),
        InFile("é.txt", "é".encode()),
    )


def test_files_field_absent_null_or_empty_means_no_files() -> None:
    for value in (None, []):
        frame = parse({"type": "run", "code": "x", "files": value}, FILES)
        assert isinstance(frame, RunRequest) and frame.files == ()


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("", "empty"),
        ("/etc/passwd", "relative"),
        ("../up.txt", "'..'"),
        ("a/../../b", "'..'"),
        ("a/..", "'..'"),
        ("./a", "'.' part"),
        ("a/./b", "'.' part"),
        ("a//b", "empty part"),
        ("a/", "empty part"),
        ("a\x00b", "NUL"),
        ("a\\b", "backslash"),
        ("..\\up", "backslash"),
        ("x" * 256, "over 255 bytes"),
        ("é" * 128, "over 255 bytes"),  # 128 characters, 256 bytes
        ("/".join(["d" * 200] * 6), "1024"),
        ("\ud800.txt", "Unicode"),
    ],
    ids=repr,
)
def test_bad_paths_are_bad_message_naming_the_file_and_why(path: str, why: str) -> None:
    message = refusal(BadMessage, {"path": path, "content": "x"})
    assert why in message
    assert message.startswith("file ")
    assert len(message) < 200  # a long path is cut short in the message


@pytest.mark.parametrize("path", ["a.txt", "data/in.csv", "a/b/c/d.py", ".hidden", "..dots", "a..b", "x" * 255, "a b"])
def test_good_paths_are_accepted(path: str) -> None:
    frame = run_with_files({"path": path, "content": "x"})
    assert isinstance(frame, RunRequest) and frame.files[0].path == path


@pytest.mark.parametrize("content", ["AAH", "AA=H", "AA H", "AAH/\n", "!!!!", "QR==", "=AAA"], ids=repr)
def test_bad_base64_is_bad_message(content: str) -> None:
    message = refusal(BadMessage, {"path": "blob.bin", "content": content, "encoding": "base64"})
    assert message == "file 'blob.bin': content is not valid base64"


def test_lone_surrogate_in_utf8_content_is_bad_message() -> None:
    message = refusal(BadMessage, {"path": "a.txt", "content": "\ud800"})
    assert "'a.txt'" in message and "UTF-8" in message


def test_duplicate_path_is_bad_message() -> None:
    message = refusal(BadMessage, {"path": "a.txt", "content": "1"}, {"path": "a.txt", "content": "2"})
    assert message == "file 'a.txt' is sent twice"


def test_a_file_that_is_also_a_folder_is_bad_message() -> None:
    message = refusal(BadMessage, {"path": "a", "content": "1"}, {"path": "a/b.txt", "content": "2"})
    assert message == "file 'a' is also a folder of another file"


def test_count_over_the_limit_is_bad_message() -> None:
    files = [{"path": f"f{i}", "content": ""} for i in range(4)]
    assert refusal(BadMessage, *files) == "4 files sent; the limit is 3"
    assert isinstance(run_with_files(*files[:3]), RunRequest)


def test_file_over_its_size_limit_is_code_too_large() -> None:
    assert isinstance(run_with_files({"path": "a", "content": "x" * 8}), RunRequest)
    message = refusal(CodeTooLarge, {"path": "a", "content": "x" * 9})
    assert message == "file 'a' is 9 bytes; the limit per file is 8"
    # the limit counts decoded bytes: 12 base64 characters are 9 bytes
    assert "9 bytes" in refusal(CodeTooLarge, {"path": "b", "content": "eHh4eHh4eHh4", "encoding": "base64"})
    assert "'é'" in refusal(CodeTooLarge, {"path": "é", "content": "é" * 5})  # 5 characters, 10 bytes


def test_files_over_the_total_are_code_too_large() -> None:
    within = [{"path": "a", "content": "x" * 6}, {"path": "b", "content": "x" * 6}]
    assert isinstance(run_with_files(*within), RunRequest)
    message = refusal(CodeTooLarge, *within, {"path": "c", "content": "x"})
    assert message == "the files are 13 bytes in all; the limit is 12"


def test_a_malformed_request_is_bad_message_even_when_also_too_large() -> None:
    refusal(BadMessage, {"path": "a", "content": "x" * 100}, {"path": "../b", "content": "x"})


def test_http_body_takes_the_same_files() -> None:
    request = parse_run_fields({"code": "x", "files": [{"path": "a", "content": "hi"}]}, FILES)
    assert request.files == (InFile("a", b"hi"),)
    with pytest.raises(BadMessage):
        parse_run_fields({"code": "x", "files": [{"path": "/a", "content": "hi"}]}, FILES)


def test_files_at_the_default_limits_fit_in_one_message() -> None:
    defaults = Settings()
    frame = {
        "type": "run",
        "code": "#" * defaults.code_max_bytes,
        "files": [
            {
                "path": "a",
                "content": base64.b64encode(b"x" * defaults.files_in_total_bytes).decode(),
                "encoding": "base64",
            }
        ],
    }
    request = parse_client_frame(json.dumps(frame), defaults)
    assert isinstance(request, RunRequest) and len(request.files[0].content) == defaults.files_in_total_bytes


@given(st.text(max_size=40))
@hyp_settings(max_examples=300, deadline=None)
def test_any_accepted_path_stays_inside_the_working_directory(path: str) -> None:
    try:
        frame = run_with_files({"path": path, "content": ""})
    except BadMessage:
        return
    assert isinstance(frame, RunRequest)
    root = PurePosixPath("/work")
    joined = root / frame.files[0].path
    assert joined.parent != joined and root in joined.parents
    assert ".." not in joined.parts and "\x00" not in path and "\\" not in path


@given(st.binary(max_size=8))
@hyp_settings(max_examples=100, deadline=None)
def test_base64_round_trips(data: bytes) -> None:
    frame = run_with_files({"path": "b", "content": base64.b64encode(data).decode(), "encoding": "base64"})
    assert isinstance(frame, RunRequest) and frame.files[0].content == data


# --- v2: resume and watch ----------------------------------------------------------------------


def test_resume_and_watch_frames(settings: Settings) -> None:
    assert parse({"type": "resume", "id": "r1", "token": "t", "after": 7}, settings) == ResumeFrame(
        id="r1", token="t", after=7
    )
    assert parse({"type": "resume", "id": "r1", "token": "t", "after": 0, "x": 1}, settings) == ResumeFrame(
        id="r1", token="t", after=0
    )
    assert parse({"type": "watch", "id": "r1", "token": "w"}, settings) == WatchFrame(id="r1", token="w")


@pytest.mark.parametrize(
    ("frame", "sentence"),
    [
        ({"type": "resume", "token": "t", "after": 0}, "'id' must be a string"),
        ({"type": "resume", "id": 5, "token": "t", "after": 0}, "'id' must be a string"),
        ({"type": "resume", "id": "r", "after": 0}, "'token' must be a string"),
        ({"type": "resume", "id": "r", "token": "t"}, "'after' must be a whole number, 0 or more"),
        ({"type": "resume", "id": "r", "token": "t", "after": -1}, "'after' must be a whole number, 0 or more"),
        ({"type": "resume", "id": "r", "token": "t", "after": 1.5}, "'after' must be a whole number, 0 or more"),
        ({"type": "resume", "id": "r", "token": "t", "after": "3"}, "'after' must be a whole number, 0 or more"),
        ({"type": "resume", "id": "r", "token": "t", "after": True}, "'after' must be a whole number, 0 or more"),
        ({"type": "watch", "id": "r"}, "'token' must be a string"),
        ({"type": "watch", "id": None, "token": "w"}, "'id' must be a string"),
    ],
    ids=repr,
)
def test_resume_and_watch_wrong_fields_are_bad_message(frame: dict[str, object], sentence: str) -> None:
    with pytest.raises(BadMessage) as caught:
        parse(frame, FILES)
    assert caught.value.message == sentence


@pytest.mark.parametrize(
    ("frame", "sentence"),
    [
        ({"type": "run"}, "'code' must be a string"),
        ({"type": "run", "code": 5}, "'code' must be a string"),
        ({"type": "run", "code": "x", "stdin": 5}, "'stdin' must be a string"),
        ({"type": "run", "code": "x", "timeout": "5"}, "'timeout' must be a number of seconds"),
        ({"type": "run", "code": "x", "timeout": 0}, "'timeout' must be a positive, finite number of seconds"),
        ({"type": "stdin", "eof": "yes"}, "'eof' must be true or false"),
        ({"type": "stdin", "data": 5}, "'data' must be a string"),
        ({"type": 1}, "a message needs a string 'type'"),
        ({"type": "exec"}, "unknown message type 'exec'"),
    ],
    ids=repr,
)
def test_refusals_read_as_sentences_not_validator_output(frame: dict[str, object], sentence: str) -> None:
    with pytest.raises(BadMessage) as caught:
        parse(frame, FILES)
    assert caught.value.message == sentence


# --- anything at all -------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
FIELDS = st.sampled_from(["type", "code", "stdin", "timeout", "files", "path", "content", "encoding", "eof", "after"])


@given(
    st.sampled_from(["run", "stdin", "kill", "resume", "watch", "other"]),
    st.dictionaries(FIELDS, JSON_VALUES | st.lists(st.dictionaries(FIELDS, JSON_VALUES, max_size=4), max_size=3)),
)
@hyp_settings(max_examples=400, deadline=None)
def test_any_frame_is_parsed_or_refused_with_a_protocol_error(kind: str, fields: dict[str, object]) -> None:
    frame = {**fields, "type": kind}
    try:
        parse_client_frame(json.dumps(frame), FILES)
    except SCEError as error:
        assert error.code in ("bad_message", "code_too_large")
        assert error.message and "pydantic" not in error.message and "Input should" not in error.message


# --- v3: filename, session ------------------------------------------------------------------------


def test_a_run_may_name_its_file_and_its_session(settings: Settings) -> None:
    frame = parse(
        {"type": "run", "code": "1", "filename": "hottest.py", "session": "s1", "session_token": "T"}, settings
    )
    assert isinstance(frame, RunRequest)
    assert (frame.filename, frame.session, frame.session_token) == ("hottest.py", "s1", "T")
    plain = parse({"type": "run", "code": "1"}, settings)
    assert isinstance(plain, RunRequest) and plain.filename is None and plain.session is None
    nulls = parse({"type": "run", "code": "1", "filename": None, "session": None, "session_token": None}, settings)
    assert isinstance(nulls, RunRequest) and nulls.filename is None  # null is as good as absent


@pytest.mark.parametrize(
    ("fields", "sentence"),
    [
        ({"filename": "a/b.py"}, "filename 'a/b.py': it must be a plain file name, without folders"),
        ({"filename": "a\\b.py"}, "without folders"),
        ({"filename": ""}, "it must be a plain file name such as 'main.py'"),
        ({"filename": ".."}, "it must be a plain file name such as 'main.py'"),
        ({"filename": "x" * 256}, "the limit is 255"),
        ({"filename": 3}, "'filename' must be a string"),
        ({"session": "s1"}, "'session' and 'session_token' go together"),
        ({"session_token": "T"}, "'session' and 'session_token' go together"),
        ({"session": 1, "session_token": "T"}, "'session' must be a string"),
    ],
)
def test_a_bad_filename_or_session_is_bad_message_that_says_why(
    settings: Settings, fields: dict[str, object], sentence: str
) -> None:
    with pytest.raises(BadMessage) as refused:
        parse({"type": "run", "code": "1", **fields}, settings)
    assert sentence in refused.value.message


def test_a_session_request_checks_its_files(settings: Settings) -> None:
    assert parse_session_request({}, settings).runtime is None
    made = parse_session_request({"runtime": "scientific", "files": [{"path": "a.csv", "content": "x"}]}, settings)
    assert made.runtime == "scientific" and made.files is not None and made.files[0].decoded() == b"x"
    with pytest.raises(BadMessage, match="sent twice"):
        parse_session_request({"files": [{"path": "a", "content": ""}, {"path": "a", "content": ""}]}, settings)
