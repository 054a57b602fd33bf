"""The runtimes a run may ask for: an image, its packages, its limits, and how its bootstrap starts.

Pure data, no engine: the image builder turns a ``RuntimeSpec`` into an image, the engine turns
it into a container (``command()``, ``environment``, the limits), and ``GET /runtimes`` lists
them. The package *versions* are not written here: they are read from the built image's labels
(``app.sandbox.docker.image.runtime_info``), so what is listed is what is installed.

Two runtimes:

- ``python``: the standard library only, today's image and limits.
- ``scientific``: Debian bookworm's numpy, pandas, matplotlib and Pillow. ``python3-munkres`` is
  named in the same install because python3-fonttools depends on ``scipy | munkres``: without it
  apt takes scipy, which drags in a C++ compiler and boost (~494 MiB for the four); with it and
  ``--no-install-recommends`` the image stays near 200 MiB of packages. Its imports peak near
  90 MiB before a program does anything, hence its own memory limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.sandbox.bootstrap import LOADER, preamble
from app.settings import Settings

DEFAULT_RUNTIME = "python"

MPL_SEED_DIR = "/usr/local/share/sce/matplotlib"
"""Where the scientific image keeps matplotlib's prebuilt font cache (read-only at run time)."""

MPL_CONFIG_DIR = "/tmp/.matplotlib"
"""MPLCONFIGDIR inside the sandbox: writable (a read-only one makes matplotlib warn and rebuild
its font cache in a temporary directory on every run); the bootstrap links the seed into it."""

# One core per sandbox: BLAS/OpenMP pools sized from the host's core count would only
# spend the pids limit (a 64-core host means 64 threads at numpy's import).
_SINGLE_THREADED = (("OPENBLAS_NUM_THREADS", "1"), ("OMP_NUM_THREADS", "1"), ("MKL_NUM_THREADS", "1"))


# gVisor's own threads (~40 at idle) count against the container's pids cgroup; at the plain limit
# its Go runtime cannot start a thread and the whole sandbox dies (exit 2, output lost). Under runsc
# the cgroup gets this much more, and that is the limit the server states (``started.limits.pids``,
# ``/runtimes``): the one the host enforces on the sandbox, gVisor's threads included. The guest's
# processes have no count limit of their own there (they are goroutines of gVisor's kernel, not host
# threads): memory and the wall clock bound them (docs/SECURITY_NOTES.md).
RUNSC_PIDS_HEADROOM = 192


def sandbox_pids(settings: Settings) -> int:
    """The pids limit a sandbox gets under the configured OCI runtime."""
    return settings.pids + (RUNSC_PIDS_HEADROOM if settings.runtime == "runsc" else 0)


@dataclass(frozen=True)
class RuntimeSpec:
    """One runtime. ``apt_packages`` are installed on top of the base image's packages;
    ``preload`` modules are imported by the warm bootstrap before a program arrives; ``rich``
    turns on the bootstrap's matplotlib backend and Pillow viewer (images on the side channel)."""

    name: str
    image: str
    description: str
    memory_mb: int
    pids: int
    tmpfs_mb: int
    pool_size: int
    apt_packages: tuple[str, ...] = ()
    preload: tuple[str, ...] = ()
    rich: bool = False
    environment: tuple[tuple[str, str], ...] = ()

    def bootstrap_args(self) -> tuple[str, ...]:
        """Arguments after ``python3 -I -c LOADER``; none for the plain runtime."""
        args: list[str] = []
        if self.preload:
            args += ["--preload", ",".join(self.preload)]
        if self.rich:
            args += ["--rich", "--mpl-seed", MPL_SEED_DIR]
        return tuple(args)

    def command(self) -> tuple[str, ...]:
        """What the container runs: the loader, which reads the bootstrap from stdin (``stdin_preamble``)
        and runs it, waiting on stdin for ``encode_program``."""
        return ("python3", "-I", "-c", LOADER, *self.bootstrap_args())

    def stdin_preamble(self) -> bytes:
        """Written to a new sandbox's stdin before anything else: the bootstrap itself."""
        return preamble(rich=self.rich)


def runtimes_from(settings: Settings) -> dict[str, RuntimeSpec]:
    """Every runtime, by name, the default first."""
    python = RuntimeSpec(
        name=DEFAULT_RUNTIME,
        image=settings.image,
        description="Python 3 with its standard library",
        memory_mb=settings.memory_mb,
        pids=sandbox_pids(settings),
        tmpfs_mb=settings.tmpfs_mb,
        pool_size=settings.pool_size,
    )
    scientific = RuntimeSpec(
        name="scientific",
        image=settings.scientific_image,
        description="Python 3 with numpy, pandas, matplotlib and Pillow; plt.show() sends images",
        memory_mb=settings.scientific_memory_mb,
        pids=sandbox_pids(settings),
        tmpfs_mb=settings.scientific_tmpfs_mb,
        pool_size=settings.scientific_pool_size,
        apt_packages=("python3-numpy", "python3-pandas", "python3-matplotlib", "python3-pil", "python3-munkres"),
        preload=("numpy", "pandas", "matplotlib.pyplot"),
        rich=True,
        environment=(("MPLCONFIGDIR", MPL_CONFIG_DIR), *_SINGLE_THREADED),
    )
    return {spec.name: spec for spec in (python, scientific)}
