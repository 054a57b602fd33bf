"""Rich output in the sandbox: ``matplotlib.pyplot.show()``, ``Figure.show()`` and
``PIL.Image.Image.show()`` send PNGs on the side channel instead of looking for a display.

Appended to ``bootstrap`` (one namespace; the imports below are for checkers and readers, and
dropped from what the sandbox gets) only for runtimes started with ``--rich``, so the plain
runtime neither receives nor compiles any of it. A meta-path finder provides the backend module
from memory (nothing is written into the read-only image) and runs a hook right after
``matplotlib`` or ``PIL.ImageShow`` is imported, by whoever and whenever.
"""

import io
import os
import sys

from app.sandbox.inside.bootstrap import _channel, _send_figure, _send_figures

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType
    from typing import Any

_BACKEND = "_sce_matplotlib"


def _fill_backend(module: "ModuleType") -> None:
    from matplotlib._pylab_helpers import Gcf  # type: ignore[import-not-found,unused-ignore]
    from matplotlib.backend_bases import (  # type: ignore[import-not-found,unused-ignore]
        FigureManagerBase,
        _Backend,
    )
    from matplotlib.backends.backend_agg import (  # type: ignore[import-not-found,unused-ignore]
        FigureCanvasAgg,
        _BackendAgg,
    )

    class _Manager(FigureManagerBase):  # type: ignore[misc,unused-ignore]
        def show(self) -> None:
            # Figure.show(): this figure only, then closed like plt.show() closes its figures
            try:
                _send_figure(self)
            finally:
                Gcf.destroy(self)

    class _Canvas(FigureCanvasAgg):  # type: ignore[misc,unused-ignore]
        manager_class = _Manager

    class _BackendSce(_BackendAgg):  # type: ignore[misc,unused-ignore]
        FigureCanvas = _Canvas
        FigureManager = _Manager

        @staticmethod
        def show(*args: "Any", **kwargs: "Any") -> None:
            _send_figures()

    _BackendSce.__module__ = module.__name__
    _Backend.export(_BackendSce)


class _Viewer:
    # first in PIL.ImageShow's list: Image.show() sends a PNG instead of looking for a display
    def show(self, image: "Any", **options: "Any") -> int:
        buf = io.BytesIO()
        try:
            image.save(buf, "PNG")
        except (OSError, ValueError, KeyError):
            buf = io.BytesIO()
            image.convert("RGBA").save(buf, "PNG")
        if _channel is not None:
            _channel.image(buf.getvalue())
        return 1


def _after_matplotlib(module: "Any") -> None:
    module.use("module://" + _BACKEND)


def _after_imageshow(module: "Any") -> None:
    module.register(_Viewer(), -1)


class _AfterLoader:
    # runs a hook once the module is loaded, then gets out of the way (the module keeps the real loader)
    def __init__(self, inner: "Any", hook: "Callable[[ModuleType], None]") -> None:
        self.inner, self.hook = inner, hook

    def __getattr__(self, name: str) -> "Any":
        return getattr(self.inner, name)

    def create_module(self, spec: "Any") -> "Any":
        return self.inner.create_module(spec)

    def exec_module(self, module: "ModuleType") -> None:
        self.inner.exec_module(module)
        module.__loader__ = self.inner
        if module.__spec__ is not None:
            module.__spec__.loader = self.inner
        self.hook(module)


class _BackendLoader:
    def create_module(self, spec: "Any") -> None:
        return None

    def exec_module(self, module: "ModuleType") -> None:
        _fill_backend(module)


class _Hooks:
    # a meta-path finder: provides the backend module from memory and runs a hook right after
    # matplotlib / PIL.ImageShow are loaded, whoever imports them and whenever
    def __init__(self) -> None:
        self.after = {"matplotlib": _after_matplotlib, "PIL.ImageShow": _after_imageshow}

    def find_spec(self, name: str, path: "Any" = None, target: "Any" = None) -> "Any":
        if name == _BACKEND:
            loader: Any = _BackendLoader()
            return type(sys.__spec__)(name, loader)
        hook = self.after.get(name)
        if hook is None:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(name, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _AfterLoader(spec.loader, hook)
                return spec
        return None


def _install_rich(seed: str) -> None:
    conf = os.environ.get("MPLCONFIGDIR")
    if seed and conf:
        # a writable MPLCONFIGDIR holding the image's prebuilt font cache: a read-only one makes
        # matplotlib warn and rebuild the cache in a temporary directory on every run
        try:
            os.makedirs(conf, exist_ok=True)
            for name in os.listdir(seed):
                if not os.path.lexists(os.path.join(conf, name)):
                    os.symlink(os.path.join(seed, name), os.path.join(conf, name))
        except OSError:
            pass
    sys.meta_path.insert(0, _Hooks())
