"""The published schema: well-formed, and every example frame in the docs and the contract fits it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from app.protocol import RuntimeInfo, parse_client_frame, parse_server_frame
from app.schema import CLIENT_FRAMES, SERVER_FRAMES, json_schema, openapi
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
# the project's own description, and the contract where a checkout sits beside it (/work/shared)
DOCS = [
    d
    for d in (ROOT / "docs" / "PROTOCOL.md", ROOT.parent / "shared" / "PROTOCOL.md", Path("/work/shared/PROTOCOL.md"))
    if d.exists()
]

SCHEMA = json_schema()
FRAMES = jsonschema.Draft202012Validator(SCHEMA)


def _sub(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": SCHEMA["$defs"]})


CLIENT = _sub("ClientFrame")
SERVER = _sub("ServerFrame")


def _objects(text: str, start: str) -> list[str]:
    """Every balanced ``{...}`` in ``text`` that begins with ``start``, newlines included."""
    found = []
    at = text.find(start)
    while at != -1:
        depth, in_string, escaped = 0, False, False
        for end in range(at, len(text)):
            char = text[end]
            if in_string:
                escaped = char == "\\" and not escaped
                if char == '"' and not escaped:
                    in_string = False
                continue
            if char == '"':
                in_string = True
            elif char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    found.append(text[at : end + 1])
                    break
        at = text.find(start, at + 1)
    return found


def _doc_frames() -> list[tuple[str, dict[str, Any]]]:
    """The docs' example frames that are concrete JSON; placeholders (STR, N, …) are skipped."""
    frames = []
    for doc in DOCS:
        text = doc.read_text()
        # the sequence diagrams continue a frame on the next line behind a "|" margin
        text = text.replace("\n  |    ", " ")
        for raw in _objects(text, '{"type"'):
            try:
                frames.append((f"{doc.parent.name}/{doc.name}", json.loads(raw)))
            except json.JSONDecodeError:
                continue
    return frames


DOC_FRAMES = _doc_frames()

# The contract's frames written with placeholders, made concrete: one of every kind and field.
CONCRETE: list[dict[str, Any]] = [
    {"type": "run", "code": "print(1)", "stdin": "x\n", "timeout": 5},
    {
        "type": "run",
        "code": "print(open('data.csv').read())",
        "runtime": "scientific",
        "stats": True,
        "files": [
            {"path": "data.csv", "content": "a,b\n"},
            {"path": "img/x.bin", "content": "AAE=", "encoding": "base64"},
        ],
    },
    {
        "type": "run",
        "code": "x = 1\nx",
        "filename": "hottest.py",
        "session": "s-5f0c",
        "session_token": "s" * 32,
    },
    {"type": "stdin", "data": "Ada\n", "eof": True},
    {"type": "stdin"},
    {"type": "kill"},
    {"type": "resume", "id": "5f0c", "token": "t" * 32, "after": 12},
    {"type": "watch", "id": "5f0c", "token": "w" * 32},
    {"type": "queued", "position": 1},
    {
        "type": "started",
        "id": "5f0c",
        "limits": {"timeout_s": 10, "memory_mb": 128, "output_bytes": 1000000, "pids": 64},
        "token": "t" * 32,
        "watch_token": "w" * 32,
    },
    {"type": "stdout", "data": "0\n1\n", "seq": 1},
    {"type": "stderr", "data": "oops\n", "seq": 2},
    {"type": "image", "mime": "image/png", "data": "iVBORw0KGgo=", "width": 640, "height": 480, "seq": 3},
    {"type": "image", "mime": "image/svg+xml", "omitted": "too_large", "seq": 4},
    {"type": "file", "path": "out/result.csv", "size": 4, "mime": "text/csv", "data": "YSxiCg==", "seq": 5},
    {"type": "file", "path": "big.bin", "size": 99999999, "mime": "application/octet-stream", "omitted": "too_large"},
    {"type": "stats", "memory_bytes": 1024, "memory_limit_bytes": 134217728, "cpu_ms": 12, "pids": 3, "seq": 6},
    {"type": "input", "data": "yes\n", "eof": False, "seq": 6},
    {"type": "input", "data": "", "eof": True, "seq": 6},
    {"type": "result", "text": "42", "seq": 6},
    {
        "type": "exit",
        "reason": "exit",
        "exit_code": 1,
        "signal": None,
        "duration_ms": 41,
        "stdout_bytes": 0,
        "stderr_bytes": 120,
        "truncated": False,
        "cpu_ms": 30,
        "memory_peak_bytes": 1048576,
        "exception": {"name": "ZeroDivisionError", "value": "division by zero", "line": 3},
        "session_alive": True,
        "seq": 7,
    },
    {
        "type": "exit",
        "reason": "exit",
        "exit_code": 0,
        "signal": None,
        "duration_ms": 41,
        "stdout_bytes": 10,
        "stderr_bytes": 0,
        "truncated": False,
        "cpu_ms": 30,
        "memory_peak_bytes": None,
        "files_truncated": True,
        "seq": 7,
    },
    {"type": "error", "code": "not_found", "message": "no such run"},
]


def test_the_schemas_are_valid_documents() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    document = openapi()
    assert document["openapi"].startswith("3.1")
    for name in document["components"]["schemas"]:
        # each component is a valid schema whose references all resolve inside the document
        validator = jsonschema.Draft202012Validator(
            {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
        )
        validator.check_schema(validator.schema)
        assert not validator.is_valid([])  # walks the references; a list is no component
    assert {"/run", "/runtimes", "/healthz", "/metrics"} <= set(document["paths"])
    assert "/schema/frames.json" in document["paths"]["/run"]["get"]["description"]


def test_the_docs_have_frames_to_check() -> None:
    kinds = {frame["type"] for _, frame in DOC_FRAMES}
    assert {"run", "stdin", "kill", "resume", "watch", "started", "stdout", "exit", "queued", "error"} <= kinds, kinds


@pytest.mark.parametrize(("doc", "frame"), DOC_FRAMES, ids=lambda v: json.dumps(v)[:60] if isinstance(v, dict) else v)
def test_every_concrete_frame_in_the_docs_fits_the_schema(doc: str, frame: dict[str, Any]) -> None:
    errors = [e.message for e in FRAMES.iter_errors(frame)]
    assert not errors, (doc, errors)


@pytest.mark.parametrize("frame", CONCRETE, ids=lambda f: f["type"])
def test_every_kind_of_frame_fits_its_side_of_the_schema(frame: dict[str, Any]) -> None:
    client = frame["type"] in {m.model_fields["type"].default for m in CLIENT_FRAMES}
    validator = CLIENT if client else SERVER
    assert not [e.message for e in validator.iter_errors(frame)]
    # and the code agrees with the schema: the server parses the client's, the client reads the server's
    if client:
        parse_client_frame(json.dumps(frame), Settings())
    else:
        assert parse_server_frame(json.dumps(frame)) is not None


def test_every_frame_type_has_a_concrete_example() -> None:
    kinds = {m.model_fields["type"].default for m in CLIENT_FRAMES + SERVER_FRAMES}
    assert kinds == {frame["type"] for frame in CONCRETE}


@pytest.mark.parametrize(
    "frame",
    [
        {},
        {"code": "x"},
        {"type": "run"},
        {"type": "run", "code": 5},
        {"type": "run", "code": "x", "timeout": 0},
        {"type": "run", "code": "x", "files": [{"path": "a"}]},
        {"type": "run", "code": "x", "files": [{"path": "a", "content": "", "encoding": "hex"}]},
        {"type": "stdin", "eof": "yes"},
        {"type": "resume", "id": "r", "token": "t", "after": -1},
        {"type": "watch", "id": "r"},
        {
            "type": "exit",
            "reason": "exploded",
            "exit_code": 0,
            "signal": None,
            "duration_ms": 1,
            "stdout_bytes": 0,
            "stderr_bytes": 0,
            "truncated": False,
        },
        {"type": "stdout", "data": "x", "seq": 0},
        {"type": "image", "mime": "image/gif"},
    ],
    ids=lambda f: json.dumps(f)[:60],
)
def test_the_schema_refuses_what_the_contract_refuses(frame: dict[str, Any]) -> None:
    assert not FRAMES.is_valid(frame)


def test_unknown_fields_are_allowed_both_ways() -> None:
    assert FRAMES.is_valid({"type": "kill", "why": "bored"})
    assert FRAMES.is_valid({"type": "stdout", "data": "x", "seq": 1, "colour": "red"})


def test_the_http_answer_in_the_docs_fits_the_openapi_schema() -> None:
    document = openapi()
    answer = jsonschema.Draft202012Validator(
        {"$ref": "#/components/schemas/RunAnswer", "components": document["components"]}
    )
    examples = [json.loads(raw) for raw in _objects((ROOT / "docs" / "PROTOCOL.md").read_text(), '{"output"')]
    assert examples
    for example in examples:
        assert not [e.message for e in answer.iter_errors(example)]
    with_rich_output = {
        **examples[0],
        "images": [{"mime": "image/png", "data": "iVBORw0KGgo=", "width": 1, "height": 1}],
        "files": [{"path": "big.bin", "size": 10**9, "mime": "application/octet-stream", "omitted": "too_large"}],
        "cpu_ms": 12,
        "memory_peak_bytes": None,
    }
    assert not [e.message for e in answer.iter_errors(with_rich_output)]


@pytest.mark.parametrize("flag", [[], ["--openapi"]], ids=["frames", "openapi"])
def test_python_m_app_schema_prints_the_documents(flag: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from app.__main__ import main

    assert main(["schema", *flag]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == (openapi() if flag else json_schema())


STRICT = json_schema(strict=True)


def _strict(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": STRICT["$defs"]})


def test_the_strict_schema_refuses_an_undeclared_field_and_a_missing_one() -> None:
    """What the conformance tests hold real frames to: closed objects, every always-sent field required."""
    exit_ = next(f for f in CONCRETE if f["type"] == "exit")
    assert not list(_strict("ExitFrame").iter_errors(exit_))
    assert list(_strict("ExitFrame").iter_errors({**exit_, "colour": "red"}))
    assert list(_strict("ExitFrame").iter_errors({k: v for k, v in exit_.items() if k != "cpu_ms"}))
    # fields left out when they do not apply stay optional; nested objects are closed too
    assert not list(_strict("ExitFrame").iter_errors({k: v for k, v in exit_.items() if k != "files_truncated"}))
    bad_exception = {**exit_, "exception": {"name": "E", "value": "", "line": None, "extra": 1}}
    assert list(_strict("ExitFrame").iter_errors(bad_exception))
    # the lenient document still lets a client read a newer server's frames
    assert not list(SERVER.iter_errors({**exit_, "colour": "red"}))


def test_the_strict_openapi_closes_every_answer() -> None:
    schemas = openapi(strict=True)["components"]["schemas"]
    for name in ("RunAnswer", "ErrorAnswer", "RuntimeInfo", "SessionCreated", "SessionInfo", "AnswerImage"):
        assert schemas[name]["additionalProperties"] is False, name
    assert "result" not in schemas["RunAnswer"]["required"]  # only on runs in a session
    paths = openapi()["paths"]
    assert {"/sessions", "/sessions/{id}", "/mcp"} <= set(paths)
    assert {p["name"] for p in paths["/healthz"]["get"]["parameters"]} == {"deep", "balancer"}


def test_a_runtime_whose_image_is_missing_is_read_by_the_client() -> None:
    listed = {
        "name": "scientific",
        "default": False,
        "python": None,
        "description": "numpy and friends",
        "packages": {},
        "available": False,
        "limits": {"memory_mb": 512, "pids": 64},
    }
    info = RuntimeInfo.model_validate(listed)
    assert info.available is False and info.python is None and info.limits is not None
    assert info.wire() == listed
