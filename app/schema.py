"""The protocol, machine-readable: JSON Schema of every frame and OpenAPI 3.1 for the HTTP side.

Both are derived from the models in ``app.protocol``, the same ones the server validates with
and the client reads with, so the published description cannot drift from what is enforced.
Limits that are server settings (code size, file sizes) are not in the schema: they vary per
server and are reported in ``started.limits`` or in the refusal itself.

Served at ``/schema/frames.json`` and ``/openapi.json``; printed by ``python -m app schema``.
"""

from __future__ import annotations

import json
from typing import Any

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


def _union(models: tuple[type[BaseModel], ...], ref_template: str) -> dict[str, Any]:
    refs = {model.model_fields["type"].default: ref_template.format(model=model.__name__) for model in models}
    return {
        "oneOf": [{"$ref": ref} for ref in refs.values()],
        "discriminator": {"propertyName": "type", "mapping": refs},
    }


def json_schema() -> dict[str, Any]:
    """JSON Schema (2020-12) of every WebSocket frame.

    The document validates any one frame, in either direction; ``$defs/ClientFrame`` and
    ``$defs/ServerFrame`` validate one direction, and each frame has its own ``$defs`` entry
    named after its model (``RunFrame``, ``ExitFrame``...). Unknown fields are allowed, as the
    contract asks of both sides.
    """
    template = "#/$defs/{model}"
    defs = _defs(CLIENT_FRAMES + SERVER_FRAMES, template)
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
`started`, then `stdout`/`stderr`/`image`/`stats`/`file` as they happen, and exactly one `exit`
(or an `error`, after which the connection closes with the code the contract names). Every
frame's schema: [{FRAMES_SCHEMA_PATH}]({FRAMES_SCHEMA_PATH})."""


def openapi() -> dict[str, Any]:
    """OpenAPI 3.1 of the HTTP endpoints; the WebSocket is described in words, with a link."""
    template = "#/components/schemas/{model}"
    schemas = _defs(HTTP_MODELS, template)
    auth: list[dict[str, list[str]]] = [{}, {"bearer": []}]
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
                        "413": _error("`code_too_large` or `message_too_large`"),
                        "415": _error("`unsupported_media_type`: the body must be application/json"),
                        "503": {
                            **_error("`busy` (retry after `Retry-After` seconds) or `unavailable`"),
                            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                        },
                    },
                },
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
                        }
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
