"""docs/CLIENT.md's examples, run as written against a real server: the guide cannot drift.

Each ```python block runs in a fresh namespace, with the guide's server address replaced by the
test server's. A block that fails fails here with the guide's own assertion.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, ServerProcess, module_server

pytestmark = [pytest.mark.docker, pytest.mark.timeout(180)]

served = module_server({"SCE_PER_CLIENT_RUNS": "8"})
GUIDE = ROOT / "docs" / "CLIENT.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def examples(path: Path = GUIDE) -> list[tuple[str, str]]:
    """(the section's title, the code) for every python block."""
    found = []
    for match in BLOCK.finditer(path.read_text(encoding="utf-8")):
        heading = re.findall(r"^## (.+)$", path.read_text(encoding="utf-8")[: match.start()], re.M)
        found.append((heading[-1] if heading else "intro", match.group(1)))
    return found


def offers_sessions(url: str) -> bool:
    """Whether the server makes sessions (the probe's session is ended at once)."""
    made = httpx.post(url + "/sessions", json={}, timeout=30)
    if made.status_code == 201:
        body = made.json()
        httpx.delete(f"{url}/sessions/{body['id']}", headers={"X-Session-Token": body["token"]}, timeout=30)
    return made.status_code != 404


def test_the_guide_has_the_five_commonest_tasks_and_async() -> None:
    titles = [title for title, _ in examples()]
    assert len(titles) >= 6, titles


@pytest.mark.parametrize("index", range(len(examples())), ids=[t.split(" ", 1)[0] for t, _ in examples()])
def test_the_example_runs_as_written(served: ServerProcess, index: int) -> None:
    title, code = examples()[index]
    assert "http://127.0.0.1:5000" in code, f"{title}: the example names no server"
    code = code.replace("http://127.0.0.1:5000", served.url)
    if "client.session(" in code and not offers_sessions(served.url):
        pytest.skip("this server does not offer sessions yet (protocol v3)")
    exec(compile(code, f"docs/CLIENT.md: {title}", "exec"), {"__name__": "__docs__"})
