"""Runtimes and rich output (protocol v2) through the real server: plots while the program runs,
files in and out, a side channel a program cannot abuse, and POST /run's answer."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest
import websockets

from app.core.sidechannel import png_size
from tests.conftest import ServerProcess, module_server
from tests.wsclient import WsResult, collect

pytestmark = [pytest.mark.docker, pytest.mark.timeout(120)]

rich = module_server(
    {
        "SCE_PER_CLIENT_RUNS": "8",
        "SCE_FILES_OUT_MAX_COUNT": "5",
        "SCE_FILE_OUT_MAX_BYTES": "4096",
        "SCE_RICH_OUTPUT_BYTES": "262144",
        "SCE_SCIENTIFIC_POOL_SIZE": "1",
    }
)


async def run(server: ServerProcess, code: str, **fields: Any) -> tuple[WsResult, list[float]]:
    """The whole run, and when each frame arrived (seconds since the run frame was sent)."""
    arrivals: list[float] = []
    result = WsResult()
    async with websockets.connect(server.ws_url, max_size=None) as connection:
        await connection.send(json.dumps({"type": "run", "code": code, **fields}))
        sent = time.monotonic()
        try:
            async for message in connection:
                result.frames.append(json.loads(message))
                arrivals.append(time.monotonic() - sent)
        except websockets.ConnectionClosed:
            pass
        result.close_code = connection.close_code
    return result, arrivals


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


async def test_runtimes_lists_what_the_images_hold(rich: ServerProcess) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        listing = (await client.get(rich.url + "/runtimes")).json()
    assert [r["name"] for r in listing] == ["python", "scientific"]
    assert listing[0]["default"] is True and listing[0]["packages"] == {}
    assert listing[0]["python"].startswith("3.")
    packages = listing[1]["packages"]
    assert {"numpy", "pandas", "matplotlib"} <= set(packages)
    assert all(isinstance(v, str) and v for v in packages.values())


async def test_a_plot_arrives_while_the_program_runs(rich: ServerProcess) -> None:
    code = (
        "import matplotlib.pyplot as plt, time\n"
        "plt.figure(figsize=(4, 3), dpi=100)\nplt.plot([1, 3, 2])\nplt.show()\n"
        "time.sleep(1.5)\nprint('after')\n"
    )
    result, arrivals = await run(rich, code, runtime="scientific")
    kinds = [f["type"] for f in result.frames]
    assert kinds == ["started", "image", "stdout", "exit"], kinds
    image = result.frames[1]
    assert image["mime"] == "image/png"
    assert png_size(base64.b64decode(image["data"])) == (image["width"], image["height"]) == (400, 300)
    assert arrivals[kinds.index("exit")] - arrivals[1] >= 1.0  # shown live, not at the end
    assert result.exit["reason"] == "exit" and result.exit["exit_code"] == 0


async def test_an_unknown_runtime_names_the_ones_that_exist(rich: ServerProcess) -> None:
    result, _ = await run(rich, "print(1)", runtime="fortran")
    assert result.error["code"] == "bad_message" and "scientific" in result.error["message"]
    assert result.close_code == 1008


async def test_a_csv_sent_in_is_read_by_pandas(rich: ServerProcess) -> None:
    files = [{"path": "data/prices.csv", "content": "item,price\napple,3\npear,5\n"}]
    code = "import pandas as pd\nprint(pd.read_csv('data/prices.csv')['price'].sum())"
    result, _ = await run(rich, code, runtime="scientific", files=files)
    assert result.text() == "8\n" and result.exit["exit_code"] == 0
    assert result.of("file") == []  # a file sent in and left unchanged does not come back


@pytest.mark.parametrize(
    ("files", "needle"),
    [
        ([{"path": "../x", "content": ""}], ".."),
        ([{"path": "/etc/x", "content": ""}], "/"),
        ([{"path": "a//b", "content": ""}], "empty"),
        ([{"path": "a", "content": ""}, {"path": "a", "content": ""}], "a"),
        ([{"path": "a", "content": "@@@", "encoding": "base64"}], "base64"),
        ([{"path": f"f{i}", "content": ""} for i in range(21)], "20"),
    ],
)
async def test_bad_files_are_refused_and_nothing_runs(rich: ServerProcess, files: list[Any], needle: str) -> None:
    result, _ = await run(rich, "print('ran')", files=files)
    assert result.error["code"] == "bad_message" and needle in result.error["message"]
    assert result.of("started") == [] and result.close_code == 1008


async def test_a_file_over_the_size_limit_is_code_too_large(rich: ServerProcess) -> None:
    result, _ = await run(
        rich, "print('ran')", files=[{"path": "big", "content": b64(b"x" * (716_800 + 1)), "encoding": "base64"}]
    )
    assert result.error["code"] == "code_too_large" and "big" in result.error["message"]
    assert result.close_code == 1009


FILES_OUT = """
import os
os.makedirs('out/deep', exist_ok=True)
open('out/deep/new.txt', 'w').write('new')
open('changed.txt', 'a').write(' and more')
open('big.bin', 'wb').write(b'x' * 5000)
os.symlink('/etc/passwd', 'passwd-link')
with open('/tmp/sparse', 'wb') as f:
    f.truncate(100 * 1024 * 1024)
os.symlink('/tmp/sparse', 'sparse-link')
print('done')
"""


async def test_files_out_come_back_before_exit_within_their_limits(rich: ServerProcess) -> None:
    sent = [{"path": "changed.txt", "content": "old"}, {"path": "same.txt", "content": "same"}]
    result, _ = await run(rich, FILES_OUT, files=sent)
    files = {f["path"]: f for f in result.of("file")}
    assert set(files) == {"out/deep/new.txt", "changed.txt", "big.bin"}  # no links, nothing unchanged
    assert base64.b64decode(files["out/deep/new.txt"]["data"]) == b"new"
    assert base64.b64decode(files["changed.txt"]["data"]) == b"old and more"
    assert files["big.bin"]["omitted"] == "too_large" and "data" not in files["big.bin"]
    assert files["big.bin"]["size"] == 5000
    kinds = [f["type"] for f in result.frames]
    assert kinds.index("stdout") < kinds.index("file") < kinds.index("exit")
    assert "files_truncated" not in result.exit


async def test_more_files_than_the_count_limit_are_truncated(rich: ServerProcess) -> None:
    code = "for i in range(9):\n    open(f'f{i}.txt', 'w').write(str(i))"
    result, _ = await run(rich, code)
    assert len(result.of("file")) == 5
    assert result.exit["files_truncated"] is True


async def test_a_run_that_times_out_sends_no_files(rich: ServerProcess) -> None:
    code = "open('made.txt', 'w').write('x')\nimport time\ntime.sleep(30)"
    result, _ = await run(rich, code, timeout=1)
    assert result.exit["reason"] == "timeout" and result.of("file") == []


async def test_forged_side_channel_framing_breaks_nothing(rich: ServerProcess) -> None:
    """Markers with a guessed nonce, truncated headers, absurd lengths: all plain output."""
    code = (
        "import sys\n"
        "w = sys.stdout.buffer.write\n"
        "w(b'\\x1eSCE:' + b'0' * 32 + b':image:2:999999999999\\n{}')\n"
        "w(b'\\x1eSCE:' + b'f' * 32 + b':file:5:1\\n{\"a\"x')\n"
        "w(b'\\x1eSCE:nonce:image\\n')\n"
        "sys.stdout.flush()\nprint('still here')\n"
    )
    result, _ = await run(rich, code)
    assert result.of("image") == [] and result.of("file") == []
    assert result.text().endswith("still here\n") and "SCE:" in result.text()
    assert result.exit["reason"] == "exit" and result.exit["exit_code"] == 0


async def test_ten_thousand_images_stay_within_the_budget(rich: ServerProcess) -> None:
    code = (
        "from PIL import Image\nimg = Image.new('RGB', (64, 64), 'red')\n"
        "for _ in range(10000):\n    img.show()\nprint('end')\n"
    )
    result, _ = await run(rich, code, runtime="scientific", timeout=60)
    images = result.of("image")
    sent = sum(len(base64.b64decode(i["data"])) for i in images if "data" in i)
    assert sent <= 262144
    assert any(i.get("omitted") == "too_large" for i in images) or len(images) < 10000
    assert result.text().endswith("end\n") and result.exit["exit_code"] == 0


async def test_post_run_takes_runtime_and_files_and_answers_images_and_files(rich: ServerProcess) -> None:
    code = (
        "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()\n"
        "open('report.txt', 'w').write(open('in.txt').read().upper())\n"
    )
    body = {"code": code, "runtime": "scientific", "files": [{"path": "in.txt", "content": "hello"}]}
    async with httpx.AsyncClient(timeout=60) as client:
        answer = await client.post(rich.url + "/run", json=body)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["reason"] == "exit" and data["exit_code"] == 0
    assert [i["mime"] for i in data["images"]] == ["image/png"]
    assert [(f["path"], base64.b64decode(f["data"])) for f in data["files"]] == [("report.txt", b"HELLO")]


async def test_a_second_connection_cannot_see_another_runs_output(rich: ServerProcess) -> None:
    """A program's records name its own run's nonce only; nothing reaches a neighbour."""
    async with websockets.connect(rich.ws_url) as other:
        await other.send(json.dumps({"type": "run", "code": "import time\nprint('quiet')\ntime.sleep(2)"}))
        result, _ = await run(rich, "import matplotlib.pyplot as plt\nplt.plot([1])\nplt.show()", runtime="scientific")
        neighbour = await collect(other)
    assert len(result.of("image")) == 1
    assert neighbour.of("image") == [] and neighbour.text() == "quiet\n"
