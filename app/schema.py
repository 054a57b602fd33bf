"""The protocol, machine-readable: JSON Schema of every frame and OpenAPI 3.1 for the HTTP side.

Both are derived from the models in ``app.protocol``, the same ones the server validates with,
builds its frames from (``app.server.frames``) and the client reads with, so the published
description cannot drift from what is enforced. ``json_schema(strict=True)`` is the server's
side as it is sent: no field the model does not declare, every field it always sends required;
the conformance tests hold real frames to it.
Limits that are server settings (code size, file sizes) are not in the schema: they vary per
server and are reported in ``started.limits`` or in the refusal itself.

Served at ``/schema/frames.json`` and ``/openapi.json``; printed by ``python -m app schema``.
"""

from __future__ import annotations

import json
from typing import Any, get_args

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from app.protocol import (
    ErrorAnswer,
    ErrorFrame,
    ExitFrame,
    FileFrame,
    ImageFrame,
    InputFrame,
    KillFrame,
    QueuedFrame,
    ResultFrame,
    ResumeFrame,
    RunAnswer,
    RunFields,
    RunFrame,
    RuntimeInfo,
    SessionCreated,
    SessionInfo,
    SessionRequest,
    StartedFrame,
    StatsFrame,
    StderrFrame,
    StdinFrame,
    StdoutFrame,
    WatchFrame,
)

PROTOCOL_VERSION = 3
FRAMES_SCHEMA_PATH = "/schema/frames.json"
OPENAPI_PATH = "/openapi.json"

CLIENT_FRAMES: tuple[type[BaseModel], ...] = (RunFrame, StdinFrame, KillFrame, ResumeFrame, WatchFrame)
SERVER_FRAMES: tuple[type[BaseModel], ...] = (
    QueuedFrame,
    StartedFrame,
    StdoutFrame,
    StderrFrame,
    ImageFrame,
    FileFrame,
    StatsFrame,
    InputFrame,
    ResultFrame,
    ExitFrame,
    ErrorFrame,
)
HTTP_ANSWERS: tuple[type[BaseModel], ...] = (RunAnswer, ErrorAnswer, RuntimeInfo, SessionCreated, SessionInfo)
HTTP_MODELS: tuple[type[BaseModel], ...] = (
    RunFields,
    RunAnswer,
    ErrorAnswer,
    RuntimeInfo,
    SessionRequest,
    SessionCreated,
    SessionInfo,
)


def _defs(models: tuple[type[BaseModel], ...], ref_template: str) -> dict[str, Any]:
    """The models' schemas as ``$defs``: how each is *read* (validation mode), defaults shown."""
    _, top = models_json_schema([(model, "validation") for model in models], ref_template=ref_template)
    defs: dict[str, Any] = top.get("$defs", {})
    return defs


def _wire_models(models: tuple[type[BaseModel], ...]) -> dict[str, type[BaseModel]]:
    """Every model the given ones are made of, by name (``ExitFrame`` -> ``ExceptionInfo``...)."""
    found: dict[str, type[BaseModel]] = {}
    todo = list(models)
    while todo:
        model = todo.pop()
        if model.__name__ in found:
            continue
        found[model.__name__] = model
        for field in model.model_fields.values():
            for arg in _type_args(field.annotation):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    todo.append(arg)
    return found


def _type_args(annotation: Any) -> list[Any]:
    args = list(get_args(annotation))
    return [annotation] + [inner for arg in args for inner in _type_args(arg)]


def _strict(defs: dict[str, Any], models: dict[str, type[BaseModel]]) -> dict[str, Any]:
    """Each object as the server sends it: closed, and every field not left out when unset required."""
    for name, schema in defs.items():
        model = models.get(name)
        if model is None or "properties" not in schema:
            continue
        omitted = set(getattr(model, "OMIT_WHEN_NONE", ())) | set(getattr(model, "ONLY_WITH", {}))
        schema["additionalProperties"] = False
        schema["required"] = [field for field in schema["properties"] if field not in omitted]
    return defs


def _union(models: tuple[type[BaseModel], ...], ref_template: str) -> dict[str, Any]:
    refs = {model.model_fields["type"].default: ref_template.format(model=model.__name__) for model in models}
    return {
        "oneOf": [{"$ref": ref} for ref in refs.values()],
        "discriminator": {"propertyName": "type", "mapping": refs},
    }


def json_schema(*, strict: bool = False) -> dict[str, Any]:
    """JSON Schema (2020-12) of every WebSocket frame.

    The document validates any one frame, in either direction; ``$defs/ClientFrame`` and
    ``$defs/ServerFrame`` validate one direction, and each frame has its own ``$defs`` entry
    named after its model (``RunFrame``, ``ExitFrame``...). Unknown fields are allowed, as the
    contract asks of both sides; ``strict`` closes the server's frames (what this server sends).
    """
    template = "#/$defs/{model}"
    defs = _defs(CLIENT_FRAMES + SERVER_FRAMES, template)
    if strict:
        _strict(defs, _wire_models(SERVER_FRAMES))
    defs["ClientFrame"] = {"description": "a frame a client sends", **_union(CLIENT_FRAMES, template)}
    defs["ServerFrame"] = {"description": "a frame the server sends", **_union(SERVER_FRAMES, template)}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": FRAMES_SCHEMA_PATH,
        "title": f"Safe Code Executor run protocol, version {PROTOCOL_VERSION}: WebSocket frames",
        "description": "Every frame is a JSON text frame holding one object with a `type`.",
        "oneOf": [{"$ref": "#/$defs/ClientFrame"}, {"$ref": "#/$defs/ServerFrame"}],
        "$defs": defs,
    }


def _json(schema_ref: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": schema_ref}}}}


def _error(description: str) -> dict[str, Any]:
    return _json("#/components/schemas/ErrorAnswer", description)


_WEBSOCKET_TEXT = f"""\
One live run per connection; upgrade with `Upgrade: websocket`. Every frame is a JSON text
frame holding one object with a `type`. The client's first frame is `run` (or, in version 2,
`resume` or `watch`); then `stdin` and `kill` at any time. The server answers with `queued`*,
`started`, then `stdout`/`stderr`/`image`/`stats`/`input`/`result`/`file` as they happen, and exactly one `exit`
(or an `error`, after which the connection closes with the code the contract names). Every
frame's schema: [{FRAMES_SCHEMA_PATH}]({FRAMES_SCHEMA_PATH})."""


def openapi(*, strict: bool = False) -> dict[str, Any]:
    """OpenAPI 3.1 of the HTTP endpoints; the WebSocket is described in words, with a link.

    ``strict`` closes the answers' schemas (what this server sends), as ``json_schema``'s."""
    template = "#/components/schemas/{model}"
    schemas = _defs(HTTP_MODELS, template)
    if strict:
        _strict(schemas, _wire_models(HTTP_ANSWERS))
    auth: list[dict[str, list[str]]] = [{}, {"bearer": []}]
    session_token = {
        "name": "X-Session-Token",
        "in": "header",
        "required": True,
        "description": "the session's `token`, from its 201 answer",
        "schema": {"type": "string"},
    }
    session_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Safe Code Executor",
            "version": f"{PROTOCOL_VERSION}",
            "description": "Run untrusted Python in locked-down containers. Protocol version "
            f"{PROTOCOL_VERSION}. WebSocket frames: [{FRAMES_SCHEMA_PATH}]({FRAMES_SCHEMA_PATH}).",
        },
        "paths": {
            "/run": {
                "get": {
                    "summary": "WebSocket: one live run",
                    "description": _WEBSOCKET_TEXT,
                    "security": auth,
                    "responses": {
                        "101": {"description": "switching to the WebSocket protocol"},
                        "401": {"description": "API tokens are configured and none valid was given"},
                        "403": {"description": "a browser Origin that is not allowed"},
                    },
                },
                "post": {
                    "summary": "One run, answered when it ends",
                    "security": auth,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": template.format(model="RunFields")}}},
                    },
                    "responses": {
                        "200": _json(template.format(model="RunAnswer"), "the program ran, whatever its outcome"),
                        "400": _error("`bad_message`: the body breaks the contract"),
                        "401": _error("`unauthorized`"),
                        "403": _error("`forbidden`: a browser Origin that is not allowed"),
                        "404": _error("`not_found`: the `session` is unknown, ended, or not this token's (v3)"),
                        "409": _error("`session_busy`: the session is running another run (v3)"),
                        "413": _error("`code_too_large` or `message_too_large`"),
                        "415": _error("`unsupported_media_type`: the body must be application/json"),
                        "503": _busy(),
                    },
                },
            },
            "/sessions": {
                "post": {
                    "summary": "Make a session: one sandbox kept for a sequence of runs (v3)",
                    "security": auth,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": template.format(model="SessionRequest")}}},
                    },
                    "responses": {
                        "201": _json(template.format(model="SessionCreated"), "the session, and its token"),
                        "400": _error("`bad_message`: an unknown runtime, or bad files"),
                        "401": _error("`unauthorized`"),
                        "403": _error("`forbidden`: a browser Origin that is not allowed"),
                        "413": _error("`code_too_large` (files) or `message_too_large`"),
                        "415": _error("`unsupported_media_type`: the body must be application/json"),
                        "503": _busy(),
                    },
                }
            },
            "/sessions/{id}": {
                "get": {
                    "summary": "A session's state (v3)",
                    "security": auth,
                    "parameters": [session_id, session_token],
                    "responses": {
                        "200": _json(template.format(model="SessionInfo"), "the session"),
                        "404": _error("`not_found`: unknown, ended, or a wrong token"),
                    },
                },
                "delete": {
                    "summary": "End a session; a run in progress ends with `exit` reason `killed` (v3)",
                    "security": auth,
                    "parameters": [session_id, session_token],
                    "responses": {
                        "204": {"description": "the session is ended and its sandbox removed"},
                        "404": _error("`not_found`: unknown, ended, or a wrong token"),
                    },
                },
            },
            "/mcp": {
                "post": {
                    "summary": "The Model Context Protocol, Streamable HTTP transport (v3)",
                    "description": "Tools `run_python`, `reset_state` and `list_runtimes` for AI agents: "
                    "JSON-RPC 2.0 messages as the Model Context Protocol (revision 2025-06-18) defines them.",
                    "security": auth,
                    "responses": {"200": {"description": "a JSON-RPC answer, or an event stream of them"}},
                }
            },
            "/runtimes": {
                "get": {
                    "summary": "The runtimes a run may ask for, the default first (v2)",
                    "responses": {
                        "200": {
                            "description": "the runtimes",
                            "content": {
                                "application/json": {
                                    "schema": {"type": "array", "items": {"$ref": template.format(model="RuntimeInfo")}}
                                }
                            },
                        }
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Whether the sandbox engine answers",
                    "parameters": [
                        {
                            "name": "deep",
                            "in": "query",
                            "required": False,
                            "description": "1: also run a probe program",
                            "schema": {"type": "string", "enum": ["1"]},
                        },
                        {
                            "name": "balancer",
                            "in": "query",
                            "required": False,
                            "description": "1: the form a load balancer reads: 503 also while the server is "
                            "draining or full (`reason` says which), so new runs go to another server",
                            "schema": {"type": "string", "enum": ["1"]},
                        },
                    ],
                    "responses": {
                        "200": _health("ok"),
                        "503": _health("unavailable"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": {"description": "Prometheus text format", "content": {"text/plain": {}}}},
                }
            },
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "needed only where the server has API tokens configured (browsers: `?token=`)",
                }
            },
        },
    }


def _busy() -> dict[str, Any]:
    return {
        **_error("`busy` (retry after `Retry-After` seconds) or `unavailable`"),
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    }


def _health(status: str) -> dict[str, Any]:
    return {
        "description": f"status {status}",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"status": {"const": status}},
                    "required": ["status"],
                    "additionalProperties": True,
                }
            }
        },
    }


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
