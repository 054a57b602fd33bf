"""The sandbox image's root filesystem, made on disk: the Debian mirror, debootstrap's output
hardened (a runner user, no setuid bits, no caches), extra packages, byte-compiled Python, and
the versions installed (``app.sandbox.docker.image`` packs and imports it).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

from app.sandbox.runtimes import MPL_SEED_DIR, RuntimeSpec
from app.settings import Settings

Progress = Callable[[str], None]

PYTHON_LABEL = "sce.python"
"""Image label: the image's Python version, read from the new root at build time."""

PACKAGE_LABEL_PREFIX = "sce.package."
"""Image labels ``sce.package.<distribution>=<version>``, one per installed distribution."""

VARIANT = "minbase"
PACKAGES = ("python3", "python3-venv", "tzdata")
"""python3 brings the whole standard library (ctypes, sqlite3, ssl...), not only
python3-minimal; python3-venv brings ensurepip, as python:3.11-slim has; tzdata makes
``zoneinfo`` useful."""

RUNNER_UID = 10001
RUNNER_NAME = "runner"
IMAGE_PATH = "/usr/local/bin:/usr/bin:/bin"

# Paths (relative to the root filesystem) whose *contents* are deleted: caches, docs, man
# pages, logs, and host details debootstrap copies in (the engine provides /dev and
# resolv.conf/hostname/hosts at run time anyway).
_PRUNE_CONTENTS = (
    "var/cache/apt",
    "var/lib/apt/lists",
    "var/cache/debconf",
    "var/log",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/lintian",
    "usr/share/locale",
    "dev",
)
_PRUNE_FILES = (
    "etc/apt/sources.list",
    "etc/hostname",
    "etc/resolv.conf",
    "etc/machine-id",
    "var/lib/dbus/machine-id",
)


class ImageBuildError(RuntimeError):
    """The image could not be built; the message says why, in one line fit for a terminal."""


# --- the mirror ---------------------------------------------------------------------------------


def _deb822_stanzas(text: str) -> Iterator[dict[str, str]]:
    """Stanzas of a deb822 file as field -> value (continuation lines joined)."""
    stanza: dict[str, str] = {}
    key = ""
    for raw in [*text.splitlines(), ""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if stanza:
                yield stanza
            stanza, key = {}, ""
        elif raw[0] in " \t" and key:
            stanza[key] += " " + raw.strip()
        elif ":" in raw:
            key, _, value = raw.partition(":")
            key = key.strip().lower()
            stanza[key] = value.strip()


def _usable(uri: str) -> bool:
    """A mirror debootstrap can fetch from; security archives lack the base suite."""
    return uri.startswith(("http://", "https://", "file:/")) and "-security" not in uri


def mirrors_from_apt(suite: str, apt_dir: Path = Path("/etc/apt")) -> list[str]:
    """Mirror URIs the host's apt uses for ``suite`` (deb822 first, then sources.list)."""
    found: list[str] = []
    for path in sorted(apt_dir.glob("sources.list.d/*.sources")):
        for st in _deb822_stanzas(path.read_text(errors="replace")):
            if st.get("enabled", "yes").lower() == "no" or "deb" not in st.get("types", "").split():
                continue
            if suite not in st.get("suites", "").split():
                continue
            found += [u for u in st.get("uris", "").split() if _usable(u)]
    lists = [apt_dir / "sources.list", *sorted(apt_dir.glob("sources.list.d/*.list"))]
    for path in lists:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            words = line.split("#", 1)[0].split()
            if words and words[0] == "deb" and len(words) > 1 and words[1].startswith("["):
                # drop "[arch=... signed-by=...]" options, which may span several words
                end = next((i for i, w in enumerate(words) if w.endswith("]")), len(words))
                words = ["deb", *words[end + 1 :]]
            if len(words) >= 3 and words[0] == "deb" and words[2] == suite and _usable(words[1]):
                found.append(words[1])
    return list(dict.fromkeys(found))


def resolve_mirror(settings: Settings, apt_dir: Path = Path("/etc/apt")) -> str:
    """SCE_IMAGE_MIRROR if set, else the first mirror the host's apt uses for the suite."""
    if settings.image_mirror:
        return settings.image_mirror
    mirrors = mirrors_from_apt(settings.image_suite, apt_dir)
    if not mirrors:
        raise ImageBuildError(
            f"no Debian mirror for suite {settings.image_suite!r} in {apt_dir}/sources.list"
            f" or {apt_dir}/sources.list.d/*.sources; set SCE_IMAGE_MIRROR"
        )
    return mirrors[0]


# --- building -----------------------------------------------------------------------------------


def _run_streamed(cmd: list[str], progress: Progress, prefix: str) -> None:
    """Run ``cmd`` in its own process group, relaying its output lines; kill the group on
    any interruption so a Ctrl-C never leaves a debootstrap running behind us."""
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    tail: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            if line:
                progress(f"{prefix}{line}")
                tail = [*tail[-9:], line]
        rc = proc.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        raise
    if rc != 0:
        raise ImageBuildError(f"{cmd[0]} failed with exit code {rc}: {' | '.join(tail[-3:])}")


def _mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root`` (debootstrap mounts /proc and /sys in the target)."""
    points = []
    prefix = str(root).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(prefix):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def _cleanup(workdir: Path, progress: Progress) -> None:
    """Remove the work directory, after detaching anything still mounted inside it; never
    recurse into a mount (that would delete from the host's /proc or /sys)."""
    for point in _mounts_under(workdir):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    if left := _mounts_under(workdir):
        progress(f"warning: not removing {workdir}: still mounted: {', '.join(left)}")
        return
    shutil.rmtree(workdir, ignore_errors=True)


def _add_runner(rootfs: Path) -> None:
    """Add the unprivileged user the sandbox runs as, with a locked password, home /tmp."""
    etc = rootfs / "etc"
    uid = RUNNER_UID
    for name, entry in (
        ("passwd", f"{RUNNER_NAME}:x:{uid}:{uid}:sandbox:/tmp:/usr/sbin/nologin"),
        ("group", f"{RUNNER_NAME}:x:{uid}:"),
        ("shadow", f"{RUNNER_NAME}:!:19000:0:99999:7:::"),
        ("gshadow", f"{RUNNER_NAME}:!::"),
    ):
        path = etc / name
        if not path.exists():
            continue
        lines = path.read_text().splitlines()
        if any(line.split(":")[0] == RUNNER_NAME for line in lines):
            continue
        taken = {line.split(":")[2] for line in lines if name in ("passwd", "group") and line.count(":") > 2}
        if str(uid) in taken:
            raise ImageBuildError(f"id {uid} is already taken in /etc/{name} of the new root")
        path.write_text("\n".join([*lines, entry]) + "\n")


def _harden(rootfs: Path) -> int:
    """Strip setuid/setgid bits and file capabilities everywhere, prune caches and docs.
    Returns how many privilege bits were removed."""
    _add_runner(rootfs)
    for rel in _PRUNE_CONTENTS:
        base = rootfs / rel
        if not base.is_dir() or base.is_symlink():
            continue
        for child in base.iterdir():
            if rel == "usr/share/locale" and child.name == "locale.alias":
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    for rel in _PRUNE_FILES:
        with contextlib.suppress(FileNotFoundError):
            (rootfs / rel).unlink()
    stripped = 0
    for dirpath, dirnames, filenames in os.walk(rootfs):
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                continue
            if st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                os.chmod(path, stat.S_IMODE(st.st_mode) & ~(stat.S_ISUID | stat.S_ISGID))
                stripped += 1
            with contextlib.suppress(OSError):
                if "security.capability" in os.listxattr(path, follow_symlinks=False):
                    os.removexattr(path, "security.capability", follow_symlinks=False)
                    stripped += 1
    return stripped


def _compile_python(rootfs: Path, progress: Progress) -> None:
    """Byte-compile Python inside the root (the standard library and dist-packages): the image
    is read-only at run time, so a missing .pyc would be recompiled on every start."""
    cmd = ["chroot", str(rootfs), "python3", "-m", "compileall", "-q", "-j0", "/usr/lib/python3"]
    versioned = sorted(p.name for p in (rootfs / "usr/lib").glob("python3.*"))
    cmd += [f"/usr/lib/{v}" for v in versioned]
    _run_streamed(cmd, progress, "  compileall: ")


def _install_extras(rootfs: Path, spec: RuntimeSpec, progress: Progress) -> None:
    """apt-get the runtime's packages into the new root (from the mirror debootstrap wrote into
    its sources.list), without recommends; /proc is mounted for the maintainer scripts."""
    env = ["env", "DEBIAN_FRONTEND=noninteractive", "LANG=C.UTF-8"]
    proc = rootfs / "proc"
    proc.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "proc", "proc", str(proc)], check=True)
    try:
        _run_streamed(["chroot", str(rootfs), *env, "apt-get", "-q", "update"], progress, "  apt: ")
        install = ["apt-get", "-q", "-y", "--no-install-recommends", "install", *spec.apt_packages]
        _run_streamed(["chroot", str(rootfs), *env, *install], progress, "  apt: ")
        _run_streamed(["chroot", str(rootfs), "apt-get", "clean"], progress, "  apt: ")
    finally:
        subprocess.run(["umount", "-l", str(proc)], check=False, capture_output=True)
    if (rootfs / "usr/lib/python3/dist-packages/matplotlib").is_dir():
        _prepare_matplotlib(rootfs, progress)


def _prepare_matplotlib(rootfs: Path, progress: Progress) -> None:
    """Make matplotlib quiet and quick in a read-only, headless sandbox: its font cache is built
    here (else every run rebuilds it, ~50-70 ms, and warns on stderr) and Debian's default
    ``backend: TkAgg`` becomes Agg, so a child ``python3`` of a program works headless too (the
    bootstrap itself selects its own backend, which sends figures on the side channel)."""
    seed = rootfs / MPL_SEED_DIR.lstrip("/")
    seed.mkdir(parents=True, exist_ok=True)
    code = "import matplotlib.font_manager as f; f.fontManager.findfont('DejaVu Sans')"
    cmd = ["chroot", str(rootfs), "env", f"MPLCONFIGDIR={MPL_SEED_DIR}", "python3", "-I", "-c", code]
    _run_streamed(cmd, progress, "  matplotlib: ")
    if not any(seed.glob("fontlist-*.json")):
        raise ImageBuildError(f"matplotlib built no font cache in {MPL_SEED_DIR}")
    for path in seed.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    rc = rootfs / "etc/matplotlibrc"
    lines = rc.read_text().splitlines() if rc.is_file() else []
    lines = [line for line in lines if not re.match(r"\s*backend\s*:", line)]
    rc.write_text("\n".join([*lines, "backend: Agg"]) + "\n")


_VERSIONS_SCRIPT = """
import importlib.metadata as m, json, platform
print(json.dumps({"python": platform.python_version(),
                  "packages": {d.metadata["Name"]: d.version for d in m.distributions()}}))
"""
_LABEL_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!-]{0,99}")


def _read_versions(rootfs: Path) -> dict[str, str]:
    """Image labels naming the Python and every distribution installed in the new root, read by
    its own interpreter (so they are what a program gets, never typed by hand)."""
    cmd = ["chroot", str(rootfs), "python3", "-I", "-c", _VERSIONS_SCRIPT]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        raise ImageBuildError(f"reading the installed versions failed: {done.stderr.strip()[-300:]}")
    found = json.loads(done.stdout)
    labels = {PYTHON_LABEL: str(found["python"])}
    for name, version in found["packages"].items():
        if _LABEL_SAFE.fullmatch(str(name)) and _LABEL_SAFE.fullmatch(str(version)):
            labels[PACKAGE_LABEL_PREFIX + str(name)] = str(version)
    return labels
