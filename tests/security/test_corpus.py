"""The hostile-program corpus, run through a real server over the real WebSocket protocol.

One test per program (``tests/security/corpus.py`` holds them as data), and after each class a
check that the server still serves hello world, still answers /healthz, and has not leaked a
container. The programs of a class run concurrently against one server (admission 4 at once) the
first time a test of that class is reached; each test then judges its own program's outcome.

Runs under the runtime in ``SCE_RUNTIME`` (``SCE_RUNTIME=runsc pytest -m security`` for gVisor).
A known gap of a runtime is reported as xfail with its description; it never excuses a broken
security property (the case's ``safe`` expectation is asserted first).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from app.sandbox.docker.engine import owner_id
from tests.conftest import ServerProcess, project_containers
from tests.security.corpus import (
    CLASSES,
    CORPUS,
    Case,
    Ctx,
    Outcome,
    by_class,
    corpus_server_env,
    describe,
    execute_all,
    judge,
    make_ctx,
    new_canary,
)
from tests.wsclient import run_ws

pytestmark = [pytest.mark.docker, pytest.mark.security, pytest.mark.timeout(300)]

CONCURRENCY = 4  # the corpus server's SCE_MAX_CONCURRENT_RUNS
POOL_SIZE = 4  # the corpus server's SCE_POOL_SIZE
SCIENTIFIC_POOL_SIZE = 1  # and its SCE_SCIENTIFIC_POOL_SIZE: warm sandboxes that may remain after a class
LEAK_WAIT_S = 15.0


@dataclass(frozen=True)
class Checkpoint:
    """After a class: the server still serves, and holds no container beyond its warm pool."""

    cls: str


@dataclass
class CorpusServer:
    server: ServerProcess
    ctx: Ctx
    owner: str
    outcomes: dict[str, Outcome] = field(default_factory=dict)


def _items() -> list[object]:
    items: list[object] = []
    for name in CLASSES:
        items.extend(pytest.param(case, id=case.key) for case in by_class(name))
        items.append(pytest.param(Checkpoint(name), id=f"{name}/~still-serves"))
    return items


@pytest.fixture(scope="module")
def corpus() -> Iterator[CorpusServer]:
    canary = new_canary()
    server = ServerProcess(corpus_server_env(canary))
    try:
        runtime = httpx.get(server.url + "/healthz", timeout=10).json()["runtime"]
        yield CorpusServer(server, make_ctx(runtime, server.port, canary), owner_id(server.proc.pid))
    finally:
        server.stop()
    assert canary not in server.log(), "the canary reached the server's log"


def _selected(request: pytest.FixtureRequest, cls: str) -> list[Case]:
    """The corpus cases of ``cls`` this session will run (so ``-k`` runs only what it selects)."""
    chosen: list[Case] = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or getattr(item, "originalname", None) != "test_corpus":
            continue
        param = callspec.params.get("item")
        if isinstance(param, Case) and param.cls == cls:
            chosen.append(param)
    return chosen


async def _outcome(corpus: CorpusServer, case: Case, request: pytest.FixtureRequest) -> Outcome:
    if case.key not in corpus.outcomes:
        batch = [c for c in _selected(request, case.cls) if c.key not in corpus.outcomes] or [case]
        corpus.outcomes.update(await execute_all(corpus.server.ws_url, batch, corpus.ctx, concurrency=CONCURRENCY))
    return corpus.outcomes[case.key]


async def _still_serves(corpus: CorpusServer, cls: str) -> None:
    assert corpus.server.proc.poll() is None, f"the server died during class {cls}:\n{corpus.server.log()[-3000:]}"
    async with httpx.AsyncClient(base_url=corpus.server.url, timeout=10) as http:
        health = await http.get("/healthz")
        assert health.status_code == 200, health.text
        result = await run_ws(corpus.server.ws_url, "print('hello world')", within=60)
        assert result.text() == "hello world\n", result.frames
        assert result.exit["reason"] == "exit" and result.exit["exit_code"] == 0, result.exit
        # nothing of the class's runs is left behind: at most the warm pool remains (removal is in the background)
        deadline = time.monotonic() + LEAK_WAIT_S
        while True:
            left = await asyncio.to_thread(project_containers, corpus.owner)
            active = (await http.get("/healthz")).json()["active_runs"]
            if len(left) <= POOL_SIZE + SCIENTIFIC_POOL_SIZE and active == 0:
                break
            assert time.monotonic() < deadline, f"after {cls}: {len(left)} containers, {active} active runs"
            await asyncio.sleep(0.2)  # the engine has no "removed" event to wait on; the deadline bounds the poll


@pytest.mark.parametrize("item", _items())
async def test_corpus(item: Case | Checkpoint, corpus: CorpusServer, request: pytest.FixtureRequest) -> None:
    if isinstance(item, Checkpoint):
        await _still_serves(corpus, item.cls)
        return
    out = await _outcome(corpus, item, request)
    verdict = judge(item, out, corpus.ctx)
    account = describe(item, out)
    if verdict.status == "gap":
        pytest.xfail(f"known {corpus.ctx.runtime} gap: {verdict.note} | precise expectation: {verdict.problems}")
    if verdict.status == "fixed":
        pytest.fail(f"{verdict.note}: remove the gap marker of {item.key}\n{account}")
    assert verdict.status == "pass", "\n".join([*verdict.problems, account])


def test_corpus_size() -> None:
    """The corpus is large enough and covers every class the issue names."""
    assert len(CORPUS) >= 60
    assert {
        "cpu",
        "bombs",
        "memory",
        "disk",
        "secrets",
        "network",
        "output",
        "survivors",
        "exit",
        "stdin",
        "tamper",
        "privilege",
        "fds",
        "code",
    } <= set(CLASSES)
