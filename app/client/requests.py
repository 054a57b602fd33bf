"""Building what the client sends, from the protocol's own models, checked before it leaves.

A request any server would refuse (a path with ``..``, a timeout of 0) fails here with the
same sentence the server would send, as ``InvalidRequest``, without a round trip. Limits that
are the server's settings (sizes, counts) are left to the server.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

from pydantic import ValidationError

from app.client.errors import InvalidRequest
from app.protocol import FileIn, RunFields, RunFrame
from app.protocol._errors import translate

Files = Mapping[str, str | bytes] | Sequence[FileIn]


def file_list(files: Files | None) -> list[dict[str, str]] | None:
    """``{"path": text or bytes}`` (or ready ``FileIn``s) as the protocol's list: text as UTF-8, bytes as base64."""
    if files is None:
        return None
    if isinstance(files, Mapping):
        out = []
        for path, content in files.items():
            if isinstance(content, bytes):
                out.append({"path": path, "content": base64.b64encode(content).decode("ascii"), "encoding": "base64"})
            else:
                out.append({"path": path, "content": content, "encoding": "utf-8"})
        return out
    return [f.model_dump() for f in files]


def run_fields(
    code: str,
    *,
    stdin: str | None = None,
    files: Files | None = None,
    runtime: str | None = None,
    timeout: float | None = None,
    filename: str | None = None,
    stats: bool = False,
    session: str | None = None,
    session_token: str | None = None,
) -> dict[str, Any]:
    """The run's fields as JSON, validated by ``RunFields``: the ``POST /run`` body, or a run frame without type."""
    raw: dict[str, Any] = {"code": code}
    fields = (
        ("stdin", stdin),
        ("files", file_list(files)),
        ("runtime", runtime),
        ("filename", filename),
        ("session", session),
        ("session_token", session_token),
    )
    for key, value in fields:
        if value is not None:
            raw[key] = value
    if timeout is not None:
        raw["timeout"] = float(timeout) if isinstance(timeout, int) and not isinstance(timeout, bool) else timeout
    if stats:
        raw["stats"] = True
    try:
        RunFields.model_validate(raw)
    except ValidationError as exc:
        raise InvalidRequest(translate(exc).message) from None
    return raw


def run_frame(**kwargs: Any) -> dict[str, Any]:
    """A ``run`` frame, as JSON."""
    return {"type": RunFrame.model_fields["type"].default, **run_fields(**kwargs)}


# The server's own pages and endpoints: a URL ending in one of these is not its base URL.
_PAGES = {
    "ui": "editor page",
    "run": "run endpoint",
    "runtimes": "runtimes list",
    "healthz": "health check",
    "metrics": "metrics",
    "static": "static files",
    "sessions": "sessions endpoint",
    "mcp": "MCP endpoint",
}


def endpoints(url: str) -> tuple[str, str]:
    """``http://host:port[/prefix]`` -> (the HTTP base, the WebSocket URL of ``/run``).

    The address of one of the server's pages (``http://host/ui``, a watch link) is refused with
    the base URL to pass instead: it would otherwise meet a plain 404 page.
    """
    parts = urlsplit(url if "://" in url else f"http://{url}")
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None:
        raise InvalidRequest(f"the server's URL must start with http:// or https:// (got {url!r})")
    http_scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/")
    head, _, last = path.rpartition("/")
    if last in _PAGES:
        base = urlunsplit((http_scheme, parts.netloc, head, "", ""))
        raise InvalidRequest(
            f"{url} is the server's {_PAGES[last]}, not the server: pass its base URL, {base or url} "
            "(the address its /ui is under)"
        )
    base = urlunsplit((http_scheme, parts.netloc, path, "", ""))
    return base, urlunsplit((scheme, parts.netloc, f"{path}/run", "", ""))


def watch_link(base_url: str, run_id: str, watch_token: str) -> str:
    """The editor's read-only view of a run: ``BASE/ui#watch=ID%3ATOKEN``, as the editor makes it.

    The same link opens in a browser and is taken by ``sce watch``.
    """
    return f"{base_url}/ui#watch={quote(f'{run_id}:{watch_token}', safe='')}"


def parse_watch_link(link: str) -> tuple[str, str, str]:
    """(the server's base URL, run id, token) from a watch link (``…/ui#watch=ID:TOKEN&code=…``,
    the ``:`` as is or as ``%3A``); ``InvalidRequest`` when it is not one."""
    parts = urlsplit(link)
    watch = parse_qs(parts.fragment).get("watch", [""])[0]
    run_id, sep, token = watch.partition(":")
    if not (parts.scheme in ("http", "https") and parts.netloc and run_id and sep and token):
        raise InvalidRequest(
            f"not a watch link: {link!r} (expected http://HOST/ui#watch=ID%3ATOKEN, as the editor's "
            "Watch link and `sce run --share` give)"
        )
    path = parts.path.rstrip("/")
    if path.endswith("/ui") or path == "/ui":
        path = path[: -len("/ui")]
    return urlunsplit((parts.scheme, parts.netloc, path, "", "")), run_id, token
