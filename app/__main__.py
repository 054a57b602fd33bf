"""Command line: ``python -m app`` (or ``sce``) builds the sandbox image and serves.

    sce image build [--force]   build the image (exit 1 on failure)
    sce image ensure            build only when missing or stale (what ``make run`` uses)
    sce image status            print missing/stale/current; exit 0 only if current
    sce serve [--bind H:P]      run the server (exit 1 if it cannot listen there)

Every subcommand reads ``Settings()`` first, so a bad ``SCE_*`` variable is reported the same
way everywhere: one line per problem, naming the variable, exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from collections.abc import Callable, Sequence
from typing import cast

from pydantic import ValidationError

from app.settings import Settings

EXIT_FAILURE = 1
EXIT_BAD_SETTINGS = 2
EXIT_NOT_CURRENT = 3


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
    return lines


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
    build = image_sub.add_parser("build", help="build the image (skipped if current unless --force)")
    build.add_argument("--force", action="store_true", help="rebuild even if the image is current")
    image_sub.add_parser("ensure", help="build the image only if it is missing or stale")
    image_sub.add_parser("status", help="print missing/stale/current; exit 0 only if current")
    serve = sub.add_parser("serve", help="run the HTTP/WebSocket server")
    serve.add_argument("--bind", metavar="HOST:PORT", help="listen address (default: SCE_BIND)")
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _image(action: str, settings: Settings, *, force: bool) -> int:
    from app.sandbox.docker.image import ImageBuildError, build_image, connect, image_status

    # a SIGTERM (CI timeout, make interrupted) must clean up like Ctrl-C does
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if action == "status":
            state = image_status(connect(settings), settings)
            print(f"{state} {settings.image}")
            return 0 if state == "current" else EXIT_NOT_CURRENT
        build_image(settings, force=force and action == "build")
    except ImageBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("interrupted; the work directory was removed", file=sys.stderr)
        return 130
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``python -m app`` and the ``sce`` console script."""
    args = _parser().parse_args(argv)
    try:
        overrides = {"bind": args.bind} if getattr(args, "bind", None) else {}
        settings = _load_settings(**overrides)
    except ValidationError as exc:
        print("invalid settings:", file=sys.stderr)
        for line in _settings_problems(exc):
            print(f"  {line}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    if args.command == "image":
        return _image(args.action, settings, force=getattr(args, "force", False))
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
