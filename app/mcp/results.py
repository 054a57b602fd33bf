"""The MCP tools as agents see them, and a run's answer as a tool result (pure: no I/O).

A ``run_python`` result is what PROTOCOL.md's "MCP (v3)" section says: one text content with
the output and a closing line saying how the run ended, an image content per image, an embedded
resource per file written, ``structuredContent`` holding the ``POST /run`` answer without the
image and file bytes (those are in the contents already), and ``isError`` unless the program
ended by itself with status 0. A refusal (busy, a bad argument...) is an ``isError`` result with
the protocol's ``{"error", "code"}``, so the agent reads why and can correct itself.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import quote

import mcp_types as mt

from app.errors import Busy, SCEError
from app.protocol import AnswerFile, FileIn, RunAnswer

RUN_PYTHON = "run_python"
RESET_STATE = "reset_state"
LIST_RUNTIMES = "list_runtimes"
RUN_ARGUMENTS = ("code", "runtime", "stdin", "timeout", "files")  # as for POST /run; plus keep_state
TEXT_MIMES = ("application/json", "application/xml", "application/javascript", "image/svg+xml")
FILE_URI = "sce://files/{path}"  # a file the program wrote, by its path in the program's directory


def _files_schema() -> dict[str, Any]:
    item = FileIn.model_json_schema()
    item.pop("title", None)
    return {
        "type": "array",
        "items": item,
        "description": "files written into the program's working directory before it starts",
    }


def tools() -> list[mt.Tool]:
    """The three tools of PROTOCOL.md, with their argument schemas."""
    run_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "code": {"type": "string", "description": "the Python program to run"},
            "runtime": {
                "type": "string",
                "description": "a runtime's name from list_runtimes (e.g. 'scientific' for numpy, pandas and "
                "matplotlib); default: the server's default",
            },
            "stdin": {"type": "string", "description": "text written to the program's standard input"},
            "timeout": {
                "type": "number",
                "exclusiveMinimum": 0,
                "description": "wall-clock limit in seconds, clamped to the server's maximum",
            },
            "files": _files_schema(),
            "keep_state": {
                "type": "boolean",
                "default": False,
                "description": "run in this conversation's own interpreter, so names (variables, functions, "
                "imports) and files from earlier keep_state calls are there; reset_state starts afresh",
            },
        },
        "required": ["code"],
    }
    return [
        mt.Tool(
            name=RUN_PYTHON,
            title="Run Python",
            description=(
                "Run a Python 3 program in a locked-down sandbox (no network; limited time, memory and "
                "processes) and answer when it ends: what it printed (stdout and stderr in order) with a "
                "closing line saying how it ended, every image it showed (matplotlib's plt.show() in the "
                "'scientific' runtime), and every file it wrote. isError is set unless it exited with "
                "status 0; an uncaught exception's traceback is in the text."
            ),
            input_schema=run_schema,
            output_schema=RunAnswer.model_json_schema(mode="validation"),
            annotations=mt.ToolAnnotations(
                read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
            ),
        ),
        mt.Tool(
            name=RESET_STATE,
            title="Reset Python state",
            description="End this conversation's kept interpreter (see run_python's keep_state), if any: "
            "the next keep_state call starts with nothing defined.",
            input_schema={"type": "object", "properties": {}},
            annotations=mt.ToolAnnotations(
                read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
            ),
        ),
        mt.Tool(
            name=LIST_RUNTIMES,
            title="List Python runtimes",
            description="The runtimes run_python may use (the default first), with their Python version and "
            "the packages importable beyond the standard library.",
            input_schema={"type": "object", "properties": {}},
            annotations=mt.ToolAnnotations(read_only_hint=True, open_world_hint=False),
        ),
    ]


def succeeded(answer: RunAnswer) -> bool:
    return answer.reason == "exit" and answer.exit_code == 0


def closing_line(answer: RunAnswer) -> str:
    """One line saying how the run ended, for the agent (and the person reading over its shoulder)."""
    took = f"{answer.duration_ms / 1000:.2f} s"
    if answer.reason != "exit":
        line = answer.error or f"The run ended: {answer.reason}."
        ended = f"[{line.rstrip('.')} ({answer.reason}, after {took})"
    elif answer.exception is not None:
        where = f" at line {answer.exception.line}" if answer.exception.line is not None else ""
        ended = f"[the program raised {answer.exception.name}{where}; exit code {answer.exit_code}, {took}"
    elif answer.signal is not None:
        ended = f"[the program was killed by {answer.signal}: exit code {answer.exit_code}, {took}"
    else:
        ended = f"[the program exited with code {answer.exit_code} in {took}"
    notes = []
    if answer.truncated:
        notes.append("output cut at the limit")
    omitted = [image.omitted for image in answer.images] + [item.omitted for item in answer.files]
    too_large = sum(reason is not None for reason in omitted)
    if too_large:
        notes.append(f"{too_large} image(s)/file(s) too large to send")
    if answer.files_truncated:
        notes.append("more files than the limit: the rest are not listed")
    return ended + "".join(f"; {note}" for note in notes) + "]"


def _file_content(item: AnswerFile) -> mt.EmbeddedResource | None:
    if item.data is None:
        return None
    uri = FILE_URI.format(path=quote(item.path))
    if item.mime.startswith("text/") or item.mime in TEXT_MIMES:
        try:
            text = base64.b64decode(item.data, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            pass  # not text after all: sent as bytes
        else:
            return mt.EmbeddedResource(resource=mt.TextResourceContents(uri=uri, mime_type=item.mime, text=text))
    return mt.EmbeddedResource(resource=mt.BlobResourceContents(uri=uri, mime_type=item.mime, blob=item.data))


def without_bytes(answer: RunAnswer) -> dict[str, Any]:
    """The ``POST /run`` answer as ``structuredContent``: image and file bytes left out."""
    stripped = answer.model_copy(
        update={
            "images": [image.model_copy(update={"data": None}) for image in answer.images],
            "files": [item.model_copy(update={"data": None}) for item in answer.files],
        }
    )
    return stripped.wire()


def run_result(answer: RunAnswer) -> mt.CallToolResult:
    output = answer.output
    if output and not output.endswith("\n"):
        output += "\n"
    content: list[mt.ContentBlock] = [mt.TextContent(text=output + closing_line(answer))]
    content += [mt.ImageContent(data=img.data, mime_type=img.mime) for img in answer.images if img.data is not None]
    content += [block for block in map(_file_content, answer.files) if block is not None]
    return mt.CallToolResult(content=content, structured_content=without_bytes(answer), is_error=not succeeded(answer))


def refusal(error: SCEError) -> mt.CallToolResult:
    """The run did not happen: the protocol's code and sentence, as a result the agent can act on."""
    structured: dict[str, Any] = {"error": error.message, "code": error.code}
    text = f"{error.message} ({error.code})"
    if isinstance(error, Busy) and error.retry_after_s:
        structured["retry_after_s"] = error.retry_after_s
        text += f"; try again in {error.retry_after_s} s"
    return mt.CallToolResult(content=[mt.TextContent(text=text)], structured_content=structured, is_error=True)


def text_result(text: str, structured: dict[str, Any], *, is_error: bool = False) -> mt.CallToolResult:
    return mt.CallToolResult(content=[mt.TextContent(text=text)], structured_content=structured, is_error=is_error)
