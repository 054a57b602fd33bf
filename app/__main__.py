"""Command line: ``python -m app`` (or ``sce``) builds the sandbox image and serves.

    sce image build [NAME] [--force]   build every runtime's image, or NAME's (exit 1 on failure)
    sce image ensure [NAME]            build only those missing or stale (what ``make run`` uses)
    sce image status                   print missing/stale/current per runtime; exit 0 only if all current
    sce serve [--bind H:P]      run the server (exit 1 if it cannot listen there)
    sce schema [--openapi]      print the protocol's JSON Schema (or the OpenAPI document)
    sce run FILE.py | -c CODE   run a program on a server in this terminal (see app/client/cli.py)
    sce watch LINK | ID TOKEN   follow another run's output
    sce repl [--runtime R]      a Python prompt on a session on a server (see app/client/repl.py)
    sce mcp --url URL           the server's MCP tools over stdio, for AI agents (see app/mcp/bridge.py)

Every server-side subcommand reads ``Settings()`` first, so a bad ``SCE_*`` variable is reported the same
way everywhere: one line per problem (an unknown name and a bad value alike), naming the variable, exit 2.

A plain install is the client (``run``, ``watch``, ``schema``; ``mcp`` with the ``[mcp]`` extra); ``serve``
and ``image`` need the ``[server]`` extra, and say so in one line when it is missing (exit 1) rather than
with a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import signal
import sys
from collections.abc import Callable, Sequence
from typing import cast

from pydantic import ValidationError

from app.settings import Settings, unknown_settings

EXIT_FAILURE = 1
EXIT_BAD_SETTINGS = 2
EXIT_NOT_CURRENT = 3

SERVER_MODULES = {"serve": ("quart", "hypercorn", "docker", "prometheus_client", "mcp"), "image": ("docker",)}
"""What each server-side subcommand imports from the [server] extra (a plain install lacks them)."""


def _settings_problems(exc: ValidationError) -> list[str]:
    """One line per problem, naming the SCE_ variable the user has to fix."""
    lines = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ()) if str(part)]
        field = loc[0] if loc else ""
        name = f"SCE_{field.upper()}" if field else "settings"
        msg = err.get("msg", "invalid")
        if msg.startswith("Value error, "):
            msg = msg.removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            msg = "unknown setting"
        value = err.get("input")
        shown = f" (got {value!r})" if field and isinstance(value, str | int | float) else ""
        lines.append(msg if not field and "SCE_" in msg else f"{name}: {msg}{shown}")
    unknown = unknown_settings()  # checked only once every value parses: say it here too
    if unknown and not any("unknown setting" in line for line in lines):
        lines.insert(0, f"unknown setting(s): {', '.join(unknown)}")
    return lines


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # a finder that refuses it
        return False


def _missing_server_extra(command: str) -> str | None:
    """One sentence if ``command`` needs the [server] extra and it is not installed."""
    missing = [name for name in SERVER_MODULES.get(command, ()) if not _importable(name)]
    if not missing:
        return None
    return (
        f"`sce {command}` needs the server's dependencies ({', '.join(missing)} missing): "
        "pip install 'safe-code-executor[server]'"
    )


def _load_settings(**overrides: str) -> Settings:
    """Settings from the environment; command-line overrides win and are validated the same way.

    (Called through a cast: without pydantic's mypy plugin, mypy takes every field for a
    required constructor argument.)
    """
    factory = cast(Callable[..., Settings], Settings)
    return factory(**overrides)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sce", description="Safe Code Executor: run untrusted Python in locked-down containers"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    image = sub.add_parser("image", help="the sandbox image")
    image_sub = image.add_subparsers(dest="action", required=True)
    build = image_sub.add_parser("build", help="build the images (skipped if current unless --force)")
    build.add_argument("name", nargs="?", help="only this runtime's image (default: every runtime)")
    build.add_argument("--force", action="store_true", help="rebuild even if the image is current")
    ensure = image_sub.add_parser("ensure", help="build the images only if missing or stale")
    ensure.add_argument("name", nargs="?", help="only this runtime's image (default: every runtime)")
    image_sub.add_parser("status", help="print missing/stale/current per runtime; exit 0 only if all current")
    serve = sub.add_parser("serve", help="run the HTTP/WebSocket server")
    serve.add_argument("--bind", metavar="HOST:PORT", help="listen address (default: SCE_BIND)")
    schema = sub.add_parser("schema", help="print the protocol's JSON Schema of every frame (or --openapi)")
    schema.add_argument("--openapi", action="store_true", help="print the OpenAPI 3.1 document instead")
    importlib.import_module("app.client.cli").add_parsers(sub)  # run, watch: the client
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _image(action: str, settings: Settings, *, name: str | None, force: bool) -> int:
    from app.sandbox.docker.image import ImageBuildError, build_image, connect, image_status
    from app.sandbox.runtimes import runtimes_from

    runtimes = runtimes_from(settings)
    if name is not None and name not in runtimes:
        print(f"error: unknown runtime {name!r}; runtimes: {', '.join(runtimes)}", file=sys.stderr)
        return EXIT_FAILURE
    specs = [runtimes[name]] if name else list(runtimes.values())
    # a SIGTERM (CI timeout, make interrupted) must clean up like Ctrl-C does
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if action == "status":
            client = connect(settings)
            states = [image_status(client, settings, spec) for spec in specs]
            for spec, state in zip(specs, states, strict=True):
                print(f"{state} {spec.image} ({spec.name})")
            return 0 if all(state == "current" for state in states) else EXIT_NOT_CURRENT
        for spec in specs:
            build_image(settings, spec, force=force and action == "build")
    except ImageBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("interrupted; the work directory was removed", file=sys.stderr)
        return 130
    return 0


def _client_side(args: argparse.Namespace) -> int:
    if args.command == "schema":
        schema = importlib.import_module("app.schema")
        print(schema.dumps(schema.openapi() if args.openapi else schema.json_schema()), end="")
        return 0
    client_main: Callable[[argparse.Namespace], int] = importlib.import_module("app.client.cli").main
    return client_main(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``python -m app`` and the ``sce`` console script."""
    args = _parser().parse_args(argv)
    if args.command in ("run", "watch", "repl", "mcp", "schema"):  # client side: the server's settings do not apply
        return _client_side(args)
    missing = _missing_server_extra(args.command)
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        overrides = {"bind": args.bind} if getattr(args, "bind", None) else {}
        settings = _load_settings(**overrides)
    except ValidationError as exc:
        print("invalid settings:", file=sys.stderr)
        for line in _settings_problems(exc):
            print(f"  {line}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    if args.command == "image":
        return _image(args.action, settings, name=getattr(args, "name", None), force=getattr(args, "force", False))
    # imported only here: serving pulls in Quart and hypercorn, which the image commands never need
    serving = importlib.import_module("app.server.serve")
    run_server: Callable[[Settings], None] = serving.run_server
    cannot_listen: type[Exception] = serving.CannotListen
    try:
        run_server(settings)
    except cannot_listen as exc:  # e.g. the port is taken: one line, and nothing was started
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return 0


if __name__ == "__main__":
    sys.exit(main())
