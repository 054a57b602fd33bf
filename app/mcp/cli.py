"""``sce mcp``'s command line: parsed without the MCP SDK, which is imported only to serve."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import logging
import sys
from typing import Any

EXIT_NO_SDK = 1


def add_parser(sub: Any) -> None:
    """``sce mcp`` on the CLI's subparsers."""
    parser = sub.add_parser(
        "mcp",
        help="serve the server's MCP tools over stdio (for an agent's tool configuration)",
        description="An MCP server on stdin/stdout whose tools (run_python, reset_state, list_runtimes) "
        "run on the server at --url.",
    )
    parser.add_argument("--url", default="http://127.0.0.1:5000", help="the server (default: %(default)s)")
    parser.add_argument("--token", help="API token, where the server wants one")


def endpoint(url: str) -> str:
    """The server's ``/mcp`` from its base URL (or from ``/mcp`` itself)."""
    url = url.rstrip("/")
    return url if url.endswith("/mcp") else url + "/mcp"


def main(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("mcp") is None:
        print("error: `sce mcp` needs the MCP SDK: pip install 'safe-code-executor[mcp]'", file=sys.stderr)
        return EXIT_NO_SDK
    # stdout is the protocol's: anything for people goes to stderr
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="sce mcp: %(message)s")
    bridge = importlib.import_module("app.mcp.bridge")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(bridge.serve_stdio(endpoint(args.url), args.token))
    return 0
