"""charrnn_ext: Karpathy's min-char-rnn with a fast, exact Cython core."""
__version__ = "0.2.0"


def _find_compiled_package():
    """Where this package's modules come from, when it is imported from a
    source checkout that has no compiled core.

    ``python -m charrnn_ext.train`` in the root of a clone puts the clone
    first on sys.path, so Python finds this source package, whose core was
    never compiled here (``pip install .`` compiled it into site-packages).
    Then the installed copy of the same version is used: ``__path__`` points
    at it, so every submodule (and the compiled core) is imported from there.
    A source tree with an in-place build (``setup.py build_ext --inplace``)
    uses its own modules. Returns the directory to use, or None when nothing
    compiled can be found (the import of the core then says what to do)."""
    import importlib.machinery
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))

    def compiled(directory: str) -> bool:
        try:
            names = os.listdir(directory)
        except OSError:
            return False
        return any(n.startswith("_core") and n.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
                   for n in names)

    if compiled(here):
        return None
    for entry in sys.path:
        candidate = os.path.join(entry or os.getcwd(), "charrnn_ext")
        try:
            if os.path.samefile(candidate, here):
                continue
        except OSError:
            continue  # no such directory
        if compiled(candidate) and _version_of(candidate) == __version__:
            return candidate
    if sys.argv[:1] == ["-m"]:  # python -m charrnn_ext...: one line, no traceback
        sys.stderr.write(
            f"charrnn_ext: {here} is a source tree without a compiled core, and no installed "
            f"charrnn_ext {__version__} was found; run `pip install .` here first\n")
        raise SystemExit(1)
    return None


def _version_of(package_dir: str):
    """The ``__version__`` written in another copy's __init__.py (read, not imported)."""
    import os
    import re
    try:
        with open(os.path.join(package_dir, "__init__.py"), encoding="utf-8") as f:
            match = re.search(r'^__version__ = "([^"]+)"', f.read(), re.MULTILINE)
    except OSError:
        return None
    return match.group(1) if match else None


def _exit_130(signum, frame):
    """Ctrl-C while a command is still loading its modules: exit 130 at once,
    quietly (nothing has run that needs saving). os._exit, not sys.exit: an
    exception raised inside an extension module's import (numpy's) comes out
    as a long ImportError."""
    import os
    os._exit(130)


class _loading:
    """``with _loading():`` around a command's imports: Ctrl-C meanwhile exits
    130 quietly (_exit_130); after the block it raises KeyboardInterrupt
    again (or calls the handler that was there before)."""

    def __enter__(self):
        import signal
        try:
            self.previous = signal.signal(signal.SIGINT, _exit_130)
        except ValueError:  # imported outside the main thread
            self.previous = None
        return self

    def __exit__(self, *exc):
        import signal
        if self.previous is not None:
            signal.signal(signal.SIGINT, signal.default_int_handler
                          if self.previous is _exit_130 else self.previous)
        return False


def _quiet_ctrl_c_while_loading() -> None:
    """Started as a command (python -m charrnn_ext..., charrnn-train, ...):
    install _exit_130 before anything heavy is imported; each command puts
    Python's own handler back once it has loaded (_loading)."""
    import os
    import signal
    import sys
    argv0 = sys.argv[0] if sys.argv else ""
    script = os.path.splitext(os.path.basename(argv0))[0]
    if argv0 == "-m" or script in ("charrnn-train", "charrnn-sample", "charrnn-sweep",
                                   "charrnn-inspect", "charrnn-export", "charrnn-score"):
        try:
            signal.signal(signal.SIGINT, _exit_130)
        except ValueError:  # not the main thread
            pass


_quiet_ctrl_c_while_loading()
_installed = _find_compiled_package()
if _installed is not None:
    __path__ = [_installed]  # noqa: F811 -- submodules come from the installed copy
del _installed

# The public names, imported on first use (PEP 562): `import charrnn_ext` stays
# light, so the command-line tools can install their Ctrl-C handling before
# numpy and the core are loaded.
_EXPORTS = {
    "CharRNN": ".core.model", "TrainingDiverged": ".core.divergence", "Vocab": ".text.vocab", "PARAM_NAMES": ".core.spec",
    "load_checkpoint": ".ckpt.checkpoint", "Checkpoint": ".ckpt.checkpoint",
    "evaluate": ".core.evaluation",
    "set_blas_threads": ".core._dispatch", "set_num_threads": ".core._dispatch",
    "get_num_threads": ".core._dispatch",
}
__all__ = [*_EXPORTS, "__version__"]
# Modules that moved into the layers, found under their old names too
# (`from charrnn_ext import _dispatch`: ../shared/tools/variant_speed.py).
_MOVED = {"_dispatch": ".core._dispatch"}


def _submodule_getattr(package: str):
    """A package's ``__getattr__`` (this one's, and each subpackage's): a
    submodule on first use, as if the package had imported it."""
    def __getattr__(name):
        import importlib
        if not name.startswith("__"):
            try:
                return importlib.import_module(f"{package}.{name}")
            except ModuleNotFoundError as exc:
                if exc.name != f"{package}.{name}":
                    raise
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return __getattr__


_submodule = _submodule_getattr(__name__)


def __getattr__(name):
    import importlib
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    if name in _MOVED:
        return importlib.import_module(_MOVED[name], __name__)
    return _submodule(name)


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
