"""The server's side of the bootstrap: how the in-sandbox program is sent and fed.

The program itself is ``app.sandbox.inside.bootstrap`` (a real module, checked by ruff and mypy;
its docstring says what it does in the sandbox), with ``inside.rich`` appended for runtimes with
``--rich`` and ``inside.session`` for a session's sandbox. Here: ``preamble()`` and
``session_preamble()``, those modules compiled once by this server (and their source, for a
sandbox with another Python), written to every new sandbox's stdin for the small ``LOADER``
command; ``encode_program``, what the server writes to a waiting bootstrap for one run;
``control_frame``, a session's control messages; and the side channel's limits.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import marshal
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from app.sandbox.inside import bootstrap as inside
from app.sandbox.inside import rich as inside_rich
from app.sandbox.inside import session as inside_session
from app.sandbox.inside.bootstrap import MAIN_FILENAME

_NONCE = re.compile(r"[0-9a-f]{32}")


class _ForTheSandbox(ast.NodeTransformer):
    """Drops what only readers and type checkers use: docstrings and bare strings, annotations,
    ``if TYPE_CHECKING:`` blocks, and imports from ``app`` (the sandbox's modules share one
    namespace there). The sandbox then neither receives nor evaluates them (an annotation is
    evaluated at every ``def``), and the code object is as small as the string program it
    replaced. Main blocks go too: ``sandbox_source`` puts one back at the very end."""

    def _body(self, body: list[ast.stmt]) -> list[ast.stmt]:
        kept = [
            stmt
            for stmt in body
            if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant))
            and not (isinstance(stmt, ast.If) and isinstance(stmt.test, ast.Name) and stmt.test.id == "TYPE_CHECKING")
            and not (isinstance(stmt, ast.ImportFrom) and (stmt.module or "").startswith("app."))
        ]
        return kept or [ast.Pass()]

    def visit_Module(self, node: ast.Module) -> ast.Module:
        self.generic_visit(node)
        node.body = self._body([stmt for stmt in node.body if not _is_main_block(stmt)])
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.ClassDef:
        self.generic_visit(node)
        node.body = self._body(node.body)
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:
        self.generic_visit(node)
        node.body = self._body(node.body)
        node.returns = None
        args = node.args
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if arg is not None:
                arg.annotation = None
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.stmt:
        if node.value is None:
            return ast.Pass()
        return ast.Assign(targets=[node.target], value=node.value, lineno=node.lineno)


def sandbox_source(*module_sources: str) -> str:
    """Modules of ``app.sandbox.inside`` as the sandbox gets them, one after another in one
    namespace (see ``_ForTheSandbox``), then the main block of the last one that has one: its
    ``main()`` runs once every module's names are defined."""
    trees = [ast.parse(source) for source in module_sources]
    main = [stmt for tree in trees for stmt in tree.body if _is_main_block(stmt)][-1]
    parts = [ast.unparse(ast.fix_missing_locations(_ForTheSandbox().visit(tree))) for tree in trees]
    return "\n".join([*parts, ast.unparse(main)]) + "\n"


def _is_main_block(stmt: ast.stmt) -> bool:
    """``if __name__ == "__main__":`` at a module's top level."""
    return isinstance(stmt, ast.If) and ast.unparse(stmt.test) in ("__name__ == '__main__'", '__name__ == "__main__"')


def _source_of(module: ModuleType) -> str:
    assert module.__file__ is not None
    return Path(module.__file__).read_text(encoding="utf-8")


BOOTSTRAP = sandbox_source(_source_of(inside))
"""The in-sandbox program as sent; it runs its ``main()`` as the loader's ``__main__``."""
RICH_BOOTSTRAP = sandbox_source(_source_of(inside), _source_of(inside_rich))
"""For a runtime with ``--rich``: the same, with ``inside.rich`` (plots and images) appended."""
SESSION_BOOTSTRAP = sandbox_source(_source_of(inside), _source_of(inside_session))
"""A session's: the bootstrap, then ``inside.session``, whose ``main()`` runs programs one after another."""
RICH_SESSION_BOOTSTRAP = sandbox_source(_source_of(inside), _source_of(inside_rich), _source_of(inside_session))


@dataclass(frozen=True)
class FilesOutLimits:
    """What one run may send out on the side channel: files (count, each, all) and images (each);
    images and files share ``max_total_bytes``. Enforced in the sandbox and again on the server."""

    max_count: int = 20
    max_file_bytes: int = 1_048_576
    max_total_bytes: int = 4 * 1_048_576
    max_image_bytes: int = 1_048_576


def encode_program(
    code: str,
    *,
    nonce: str,
    files: Sequence[tuple[str, bytes]] = (),
    out: FilesOutLimits | None = None,
    filename: str = MAIN_FILENAME,
) -> bytes:
    """What the server writes first to a waiting bootstrap (see the module's docstring).

    ``nonce``: 32 lowercase hex characters, fresh for each run; ``files``: (relative path,
    content) pairs already validated by the server; ``out``: the side channel's limits
    (``FilesOutLimits()`` when None); ``filename``: what tracebacks call the code, a plain name
    the server has validated (``app.protocol``), sent hex-encoded in the header.
    """
    if not _NONCE.fullmatch(nonce):
        raise ValueError("nonce must be 32 lowercase hex characters")
    name = filename.encode("utf-8", "surrogatepass")
    if not name or b"/" in name or len(name) > 255:
        raise ValueError("filename must be a plain name of 1 to 255 bytes")
    limits = out or FilesOutLimits()
    body = code.encode("utf-8", "surrogatepass")
    meta = b""
    if files:
        meta = json.dumps({"files": [[path, len(content)] for path, content in files]}).encode()
    header = b"%d %d %s %d %d %d %d %s\n" % (
        len(body),
        len(meta),
        nonce.encode(),
        limits.max_count,
        limits.max_file_bytes,
        limits.max_total_bytes,
        limits.max_image_bytes,
        name.hex().encode(),
    )
    return b"".join([header, meta, body, *(content for _, content in files)])


def control_frame(kind: bytes, payload: bytes = b"") -> bytes:
    """One frame for a session's bootstrap (``--session``): ``kind`` is one of the inside module's
    ``CONTROL_*`` (a program from ``encode_program``, stdin, its end, an interrupt)."""
    return kind + b" %d\n" % len(payload) + payload


# Reads the bootstrap from stdin (exactly: the program and its input follow) and runs it as
# __main__ with the command's arguments; a stdin closed first ends it quietly. The bootstrap comes
# twice: compiled (marshal) and as source. The code object runs when it was made for this very
# interpreter (the same bytecode magic number); any other Python compiles the source instead.
LOADER = (
    "import os, sys, marshal\n"
    "h = b''\n"
    "while not h.endswith(b'\\n'):\n"
    "    c = os.read(0, 1)\n"
    "    if not c or len(h) > 64:\n"
    "        os._exit(0)\n"
    "    h += c\n"
    "k, n, m = h.split()\n"
    "k = int(k)\n"
    "n = k + int(n)\n"
    "s = []\n"
    "while n > 0:\n"
    "    c = os.read(0, min(n, 1 << 16))\n"
    "    if not c:\n"
    "        os._exit(0)\n"
    "    s.append(c)\n"
    "    n -= len(c)\n"
    "s = b''.join(s)\n"
    "c = getattr(sys.modules.get('_frozen_importlib_external'), 'MAGIC_NUMBER', b'').hex().encode()\n"
    "c = marshal.loads(s[:k]) if m == c else compile(s[k:], '<string>', 'exec')\n"
    "del h, k, n, m, s\n"
    "exec(c)\n"
)


def _preamble(source: str, magic: bytes) -> bytes:
    code = marshal.dumps(compile(source, "<string>", "exec", dont_inherit=True, optimize=0))
    body = source.encode()
    return b"%d %d %s\n" % (len(code), len(body), magic.hex().encode()) + code + body


_MAGIC = importlib.util.MAGIC_NUMBER
_PREAMBLES = {  # (rich, session)
    (False, False): _preamble(BOOTSTRAP, _MAGIC),
    (True, False): _preamble(RICH_BOOTSTRAP, _MAGIC),
    (False, True): _preamble(SESSION_BOOTSTRAP, _MAGIC),
    (True, True): _preamble(RICH_SESSION_BOOTSTRAP, _MAGIC),
}


def preamble(*, rich: bool = False) -> bytes:
    """What the engine writes to a new sandbox's stdin before any program: the bootstrap for LOADER.

    ``<code_len> <source_len> <magic>\\n`` + the compiled bootstrap (``marshal``) + its source.
    Compiling its 20 KB in every sandbox cost ~5 ms of CPU per container (docs/PERFORMANCE.md);
    unmarshalling the server's code object costs ~0.1 ms. The code object is only used by a Python
    with the server's bytecode magic number (the same version), so a sandbox image with another
    Python still works, paying the compile. ``rich``: for a runtime started with ``--rich``.
    """
    return _PREAMBLES[rich, False]


def session_preamble(*, rich: bool = False) -> bytes:
    """``preamble()`` for a session's sandbox: the session's bootstrap (``SESSION_BOOTSTRAP``)."""
    return _PREAMBLES[rich, True]
