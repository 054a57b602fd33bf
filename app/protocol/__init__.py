"""The run protocol (PROTOCOL.md, version 2) as models: one description for the server's
validation, the Python client and the published JSON Schema.

- ``inbound``: what clients send, and the parse API the server uses (``parse_client_frame``,
  ``parse_run_fields``), whose refusals are ``SCEError``s with the protocol's codes;
- ``files``: files in, checked and decoded;
- ``outbound``: what the server sends, built as models and dumped with ``.wire()``;
``app.schema`` derives the JSON Schema of every frame and the OpenAPI document from these.
"""

from app.protocol.files import FileIn, InFile
from app.protocol.inbound import (
    CLIENT_FRAME_MODELS,
    ClientFrame,
    KillFrame,
    ResumeFrame,
    RunFields,
    RunFrame,
    RunRequest,
    StdinFrame,
    WatchFrame,
    effective_timeout,
    load_json_object,
    parse_client_frame,
    parse_run_fields,
)
from app.protocol.outbound import (
    AnswerFile,
    AnswerImage,
    ErrorAnswer,
    ErrorFrame,
    ExitFrame,
    FileFrame,
    ImageFrame,
    Limits,
    QueuedFrame,
    RunAnswer,
    RuntimeInfo,
    ServerFrame,
    StartedFrame,
    StatsFrame,
    StderrFrame,
    StdoutFrame,
    parse_server_frame,
)

__all__ = [
    "CLIENT_FRAME_MODELS",
    "AnswerFile",
    "AnswerImage",
    "ClientFrame",
    "ErrorAnswer",
    "ErrorFrame",
    "ExitFrame",
    "FileFrame",
    "FileIn",
    "ImageFrame",
    "InFile",
    "KillFrame",
    "Limits",
    "QueuedFrame",
    "ResumeFrame",
    "RunAnswer",
    "RunFields",
    "RunFrame",
    "RunRequest",
    "RuntimeInfo",
    "ServerFrame",
    "StartedFrame",
    "StatsFrame",
    "StderrFrame",
    "StdinFrame",
    "StdoutFrame",
    "WatchFrame",
    "effective_timeout",
    "load_json_object",
    "parse_client_frame",
    "parse_run_fields",
    "parse_server_frame",
]
