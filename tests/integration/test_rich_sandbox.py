"""The scientific runtime's bootstrap in a real, locked-down sandbox: images arrive live, in
order with prints; files go in and come back; links out of the working directory never do.

Containers are made with the engine's own container config (``tests.integration.lockdown``:
read-only root, user 10001, no network, the runtime's tmpfs and memory), so these tests run
what production runs. Each carries this module's labels and is removed by them.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator

import docker
import docker.errors
import pytest

from app.core.sidechannel import Record, SideChannelDemux
from app.sandbox.bootstrap import FilesOutLimits, encode_program
from app.sandbox.docker.image import build_image, image_status
from app.sandbox.runtimes import RuntimeSpec, runtimes_from
from app.settings import Settings
from tests.integration.lockdown import run_program, sandbox_config

RUN_ID = uuid.uuid4().hex[:12]
TEST_LABELS = {"sce.test": "rich", "sce.test.run": RUN_ID}
NONCE = uuid.uuid4().hex

pytestmark = [pytest.mark.docker, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="module")
def scientific(settings: Settings) -> RuntimeSpec:
    return runtimes_from(settings)["scientific"]


@pytest.fixture(scope="module")
def api(settings: Settings, scientific: RuntimeSpec) -> Iterator[docker.APIClient]:
    client = docker.from_env(timeout=60)
    if image_status(client, settings, scientific) == "missing":
        build_image(settings, scientific)
    yield client.api
    leftover = [c["Id"] for c in client.api.containers(all=True, filters={"label": f"sce.test.run={RUN_ID}"})]
    for container_id in leftover:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(container_id, force=True)
    client.close()
    assert not leftover, f"containers left behind: {leftover}"


def stdout_items(chunks: list[tuple[float, str, bytes]]) -> list[tuple[float, bytes | Record]]:
    """Output and records on stdout, the end's ``exit`` record (the program's status) left out."""
    demux = SideChannelDemux(NONCE, 1 << 24)
    items = [(t, item) for t, stream, data in chunks if stream == "stdout" for item in demux.feed(data)]
    items += [(time.monotonic(), item) for item in demux.finish()]
    return [(t, i) for t, i in items if not (isinstance(i, Record) and i.kind in ("exit", "stderr"))]


def stderr_of(chunks: list[tuple[float, str, bytes]]) -> bytes:
    """What the program wrote on stderr: sys.stderr's records on stdout, then fd 2 itself (the
    bootstrap's end marker left out)."""
    out = SideChannelDemux(NONCE, 1 << 24)
    stdout = b"".join(data for _, stream, data in chunks if stream == "stdout")
    records = [i.data or b"" for i in out.feed(stdout) + out.finish() if isinstance(i, Record) and i.kind == "stderr"]
    demux = SideChannelDemux(NONCE, 1 << 16)
    data = b"".join(data for _, stream, data in chunks if stream == "stderr")
    return b"".join(records) + b"".join(i for i in demux.feed(data) + demux.finish() if isinstance(i, bytes))


def test_plt_show_arrives_live_before_a_later_print(
    api: docker.APIClient, settings: Settings, scientific: RuntimeSpec
) -> None:
    code = (
        "import matplotlib.pyplot as plt, time\n"
        "plt.plot([1, 4, 9])\n"
        "plt.show()\n"
        "time.sleep(1)\n"
        "print('after the sleep')\n"
    )
    chunks = run_program(api, sandbox_config(settings, scientific, TEST_LABELS), encode_program(code, nonce=NONCE))
    assert stderr_of(chunks) == b""
    items = stdout_items(chunks)
    images = [(t, i) for t, i in items if isinstance(i, Record) and i.kind == "image"]
    prints = [(t, i) for t, i in items if isinstance(i, bytes)]
    assert len(images) == 1 and prints and prints[0][1] == b"after the sleep\n", items
    (image_at, image), (print_at, _) = images[0], prints[0]
    assert items.index(images[0]) < items.index(prints[0])
    assert print_at - image_at > 0.8  # sent when shown, not held until the program ended
    assert image.data is not None and image.data.startswith(b"\x89PNG")
    assert image.meta == {"mime": "image/png", "width": 640, "height": 480}


def test_files_in_and_out_never_follow_links(
    api: docker.APIClient, settings: Settings, scientific: RuntimeSpec
) -> None:
    code = (
        "import os, pandas as pd\n"
        "df = pd.read_csv('in/data.csv')\n"
        "os.mkdir('out')\n"
        "df.assign(total=df.a + df.b).to_csv('out/result.csv', index=False)\n"
        "os.symlink('/etc/passwd', 'passwd')\n"
        "with open('/tmp/sparse.bin', 'wb') as f:\n"
        "    f.truncate(100 * 1024 * 1024)\n"
        "os.symlink('/tmp/sparse.bin', 'sparse-link.bin')\n"
        "with open('sparse-here.bin', 'wb') as f:\n"
        "    f.truncate(100 * 1024 * 1024)\n"
        "print(os.getcwd(), sorted(os.listdir('.')))\n"
    )
    files = [("in/data.csv", b"a,b\n1,2\n3,4\n"), ("in/unchanged.txt", b"same")]
    limits = FilesOutLimits(max_count=10, max_file_bytes=1 << 20, max_total_bytes=4 << 20, max_image_bytes=1 << 20)
    payload = encode_program(code, nonce=NONCE, files=files, out=limits)
    chunks = run_program(api, sandbox_config(settings, scientific, TEST_LABELS), payload)
    assert stderr_of(chunks) == b""
    items = [i for _, i in stdout_items(chunks)]
    text = b"".join(i for i in items if isinstance(i, bytes))
    assert text == b"/tmp/work ['in', 'out', 'passwd', 'sparse-here.bin', 'sparse-link.bin']\n"
    records = {i.meta.get("path"): i for i in items if isinstance(i, Record) and i.kind == "file"}
    assert sorted(records) == ["out/result.csv", "sparse-here.bin"]
    assert records["out/result.csv"].data == b"a,b,total\n1,2,3\n3,4,7\n"
    assert records["out/result.csv"].meta["mime"] == "text/csv"
    sparse = records["sparse-here.bin"]
    assert sparse.omitted == "too_large" and sparse.data is None and sparse.meta["size"] == 100 * 1024 * 1024
    end = items[-1]
    assert isinstance(end, Record) and end.kind == "files_end" and end.meta == {"count": 2, "files_truncated": False}


def test_pillow_show_figure_show_and_figures_left_open_at_the_end(
    api: docker.APIClient, settings: Settings, scientific: RuntimeSpec
) -> None:
    code = (
        "from PIL import Image\n"
        "import matplotlib.pyplot as plt\n"
        "Image.new('RGB', (30, 20), 'red').show()\n"
        "plt.figure(figsize=(1, 1)).show()\n"
        "plt.figure(figsize=(2, 1)); plt.plot([1, 2])\n"
        "print('end')\n"
    )
    chunks = run_program(api, sandbox_config(settings, scientific, TEST_LABELS), encode_program(code, nonce=NONCE))
    assert stderr_of(chunks) == b""
    items = [i for _, i in stdout_items(chunks)]
    shown = [(i.kind, i.meta.get("width"), i.meta.get("height")) if isinstance(i, Record) else i for i in items]
    assert shown == [("image", 30, 20), ("image", 100, 100), b"end\n", ("image", 200, 100), ("files_end", None, None)]
