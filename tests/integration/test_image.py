"""The sandbox images, against the real engine: built from the recipe, idempotent, and what the
runner relies on (Python 3.11 with its whole standard library, uid 10001, no setuid files); the
scientific runtime's packages import quietly under the real lock-down, and the image's labels
name the versions installed.

The image is normally built by ``make image`` first; if it is missing or stale the module
builds it once (``build_image`` is idempotent). Every container is labelled and removed.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from app.core.sidechannel import Record, SideChannelDemux
from app.sandbox.bootstrap import encode_program
from app.sandbox.docker.image import (
    RECIPE_LABEL,
    EngineUnavailable,
    build_image,
    connect,
    image_status,
    mirrors_from_apt,
    recipe_hash,
    resolve_mirror,
    runtime_info,
)
from app.sandbox.runtimes import RuntimeSpec, runtimes_from
from app.settings import Settings
from tests.integration.lockdown import run_program, sandbox_config

# the run label tells this session's containers from those of another run of the same tests
RUN_ID = uuid.uuid4().hex[:12]
TEST_LABELS = {"sce.managed": "true", "sce.test": "image", "sce.test.run": RUN_ID}


# --- pure: no engine ---------------------------------------------------------------------------


def test_recipe_hash_depends_on_suite_not_mirror() -> None:
    base = Settings(image_suite="bookworm", image_mirror="http://mirror-a.invalid/debian")
    assert recipe_hash(base) == recipe_hash(base.model_copy(update={"image_mirror": None}))
    assert recipe_hash(base) != recipe_hash(base.model_copy(update={"image_suite": "trixie"}))
    assert len(recipe_hash(base)) == 64


def test_each_runtime_has_its_own_recipe() -> None:
    settings = Settings()
    python, scientific = runtimes_from(settings).values()
    assert recipe_hash(settings) == recipe_hash(settings, python)
    assert recipe_hash(settings, scientific) != recipe_hash(settings, python)
    # limits and tags are not content: changing them must not make the image stale
    roomier = settings.model_copy(update={"scientific_memory_mb": 2048, "scientific_image": "x:y"})
    assert recipe_hash(roomier, runtimes_from(roomier)["scientific"]) == recipe_hash(settings, scientific)


def test_mirror_from_deb822_skips_security_and_other_suites(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n"
        "URIs: http://mirror.invalid/debian\n"
        "Suites: bookworm bookworm-updates\n"
        "Components: main\n"
        "\n"
        "Types: deb\n"
        "URIs: http://mirror.invalid/debian-security\n"
        "Suites: bookworm-security\n"
        "\n"
        "Types: deb\n"
        "URIs: http://other.invalid/debian\n"
        "Suites: trixie\n"
    )
    (tmp_path / "sources.list").write_text(
        "# comment\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://list.invalid/debian bookworm main\n"
        "deb http://list.invalid/debian-security bookworm-security main\n"
        "deb-src http://src.invalid/debian bookworm main\n"
    )
    assert mirrors_from_apt("bookworm", tmp_path) == [
        "http://mirror.invalid/debian",
        "http://list.invalid/debian",
    ]
    assert mirrors_from_apt("trixie", tmp_path) == ["http://other.invalid/debian"]


def test_mirror_setting_wins_and_missing_mirror_is_a_clear_error(tmp_path: Path) -> None:
    override = Settings(image_mirror="http://chosen.invalid/debian")
    assert resolve_mirror(override, tmp_path) == "http://chosen.invalid/debian"
    with pytest.raises(RuntimeError, match=r"no Debian mirror for suite .bookworm.*SCE_IMAGE_MIRROR"):
        resolve_mirror(Settings(image_mirror=None, image_suite="bookworm"), tmp_path)


# --- against the engine -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[docker.DockerClient]:
    try:
        client = connect(settings)
    except EngineUnavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    yield client
    leftover = _containers(client, {"label": f"sce.test.run={RUN_ID}"})
    for container_id in leftover:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(container_id, force=True)
    client.close()
    assert not leftover, f"containers left behind: {leftover}"


@pytest.fixture(scope="module")
def image(client: docker.DockerClient, settings: Settings) -> str:
    if image_status(client, settings) != "current":
        build_image(settings)
    return settings.image


def _containers(client: docker.DockerClient, filters: dict[str, str]) -> list[str]:
    # the low-level list: the high-level one inspects each container and races with removals
    return [c["Id"] for c in client.api.containers(all=True, filters=filters)]


def run_in_image(client: docker.DockerClient, image: str, cmd: list[str], *, user: str | None = None) -> str:
    """Run ``cmd`` in a throw-away container (no network, auto-removed, labelled); return its
    output. Output is read through an attach made before start, as the container removes
    itself on exit; the finally removes it in any case."""
    container = client.containers.create(
        image,
        cmd,
        network_mode="none",
        auto_remove=True,
        labels=TEST_LABELS,
        **({"user": user} if user is not None else {}),
    )
    try:
        stream = container.attach(stdout=True, stderr=True, stream=True, logs=True)
        container.start()
        return b"".join(stream).decode()
    finally:
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            container.remove(force=True)
        deadline = time.monotonic() + 10
        while _containers(client, {"id": container.id}):
            assert time.monotonic() < deadline, f"container {container.short_id} was not removed"
            time.sleep(0.05)


@pytest.mark.docker
@pytest.mark.timeout(600)  # may build the image (about a minute) when make image did not
def test_status_is_current_after_build(client: docker.DockerClient, settings: Settings, image: str) -> None:
    assert image_status(client, settings) == "current"
    labels = client.images.get(image).labels
    assert labels[RECIPE_LABEL] == recipe_hash(settings)
    assert labels["sce.managed"] == "true"


@pytest.mark.docker
def test_second_build_is_a_quick_no_op(client: docker.DockerClient, settings: Settings, image: str) -> None:
    before = client.images.get(image).id
    lines: list[str] = []
    started = time.monotonic()
    assert build_image(settings, progress=lines.append) == "current"
    assert time.monotonic() - started < 5
    assert client.images.get(image).id == before
    assert not any("debootstrap" in line for line in lines), lines


@pytest.mark.docker
def test_image_config(client: docker.DockerClient, image: str) -> None:
    config = client.images.get(image).attrs["Config"]
    assert config["User"] == "10001:10001"
    assert config["WorkingDir"] == "/tmp"
    assert "PATH=/usr/local/bin:/usr/bin:/bin" in config["Env"]
    assert "LANG=C.UTF-8" in config["Env"]


@pytest.mark.docker
def test_python_is_3_11(client: docker.DockerClient, image: str) -> None:
    out = run_in_image(client, image, ["python3", "--version"])
    assert out.startswith("Python 3.11."), out


@pytest.mark.docker
def test_standard_library_imports(client: docker.DockerClient, image: str) -> None:
    code = (
        "import ctypes, sqlite3, ssl, venv, json, decimal, zoneinfo\n"
        "sqlite3.connect(':memory:').execute('select 1')\n"
        "zoneinfo.ZoneInfo('Europe/Paris')\n"
        "print('ok', ssl.OPENSSL_VERSION)\n"
    )
    out = run_in_image(client, image, ["python3", "-c", code])
    assert out.startswith("ok OpenSSL"), out


@pytest.mark.docker
def test_default_user_is_runner(client: docker.DockerClient, image: str) -> None:
    assert run_in_image(client, image, ["id", "-u"]).strip() == "10001"
    assert run_in_image(client, image, ["id", "-g"]).strip() == "10001"


@pytest.mark.docker
def test_no_setuid_or_setgid_files(client: docker.DockerClient, image: str) -> None:
    # as root, so that no directory is unreadable and nothing is missed
    out = run_in_image(client, image, ["find", "/", "-xdev", "-perm", "/6000", "-type", "f"], user="0")
    assert out == "", out


# --- the scientific runtime ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def scientific(client: docker.DockerClient, settings: Settings) -> RuntimeSpec:
    spec = runtimes_from(settings)["scientific"]
    if image_status(client, settings, spec) != "current":
        build_image(settings, spec)
    return spec


@pytest.mark.docker
@pytest.mark.timeout(900)  # may build the image (about two minutes) when make image did not
def test_scientific_image_is_current_and_its_labels_name_the_versions(
    client: docker.DockerClient, settings: Settings, scientific: RuntimeSpec
) -> None:
    assert image_status(client, settings, scientific) == "current"
    info = runtime_info(client.api, scientific)
    assert str(info["python"]).startswith("3.11.")
    packages = info["packages"]
    assert isinstance(packages, dict)
    for name in ("numpy", "pandas", "matplotlib", "Pillow"):
        assert packages.get(name, "").count(".") >= 1, (name, packages)
    assert "scipy" not in packages  # kept out on purpose: see app.sandbox.runtimes


@pytest.mark.docker
def test_scientific_packages_import_quietly_under_the_lockdown(
    client: docker.DockerClient, settings: Settings, scientific: RuntimeSpec
) -> None:
    """Read-only root, a UID with no passwd entry, no network, the runtime's tmpfs: the imports, a plot and its
    PNG work, with nothing on stderr (no font-cache rebuild, no temporary config directory)."""
    code = (
        "import os, socket, importlib.metadata as md\n"
        "import numpy, pandas, matplotlib, matplotlib.pyplot as plt, PIL\n"
        "fig = plt.figure(); plt.plot(numpy.arange(5)); plt.title('t'); fig.savefig('/tmp/p.png')\n"
        "plt.close('all')\n"
        "print(os.getuid(), pandas.DataFrame({'a': [1, 2]}).a.sum())\n"
        "print(' '.join(md.version(n) for n in ('numpy', 'pandas', 'matplotlib', 'Pillow')))\n"
        "try:\n"
        "    open('/usr/lib/x', 'w')\n"
        "except OSError as e:\n"
        "    print('read-only', e.errno in (13, 30))\n"  # EROFS; gVisor says EACCES
        "print([name for _, name in socket.if_nameindex()])\n"
    )
    config = sandbox_config(settings, scientific, TEST_LABELS)
    nonce = uuid.uuid4().hex
    chunks = run_program(client.api, config, encode_program(code, nonce=nonce))

    def split(stream: str) -> tuple[str, str]:
        """The stream's own bytes, and the text of the stderr records it carried (the bootstrap
        sends sys.stderr's text as records on stdout, and ends with a marker on stderr)."""
        demux = SideChannelDemux(nonce, 1 << 20)
        items = demux.feed(b"".join(data for _, s, data in chunks if s == stream)) + demux.finish()
        plain = b"".join(item for item in items if isinstance(item, bytes)).decode()
        records = b"".join(i.data or b"" for i in items if isinstance(i, Record) and i.kind == "stderr").decode()
        return plain, records

    stdout, stderr_records = split("stdout")
    stderr_plain, _ = split("stderr")
    stderr = stderr_plain + stderr_records
    assert stderr == "", stderr
    packages = runtime_info(client.api, scientific)["packages"]
    assert isinstance(packages, dict)
    versions = " ".join(packages[n] for n in ("numpy", "pandas", "matplotlib", "Pillow"))
    lines = stdout.split("\n")
    uid, total = lines[0].split()
    assert int(uid) == int(config["user"].split(":")[0]) >= settings.sandbox_uid_base and total == "3", stdout
    assert lines[1:4] == [versions, "read-only True", "['lo']"], stdout
