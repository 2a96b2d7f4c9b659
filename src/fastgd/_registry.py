"""Backend names -> backend modules, the current backend, and why a backend cannot run.

Each backend is one module under ``fastgd.backends`` with the same functions
(``loss_grad``, ``gd_step``, ``penalty``). A module that cannot run here raises
:class:`BackendUnavailableError` when imported, with the reason; the registry
remembers that reason and repeats it to whoever selects the backend.
"""

import contextlib
import contextvars
import importlib
import os
import threading

from . import _config

#: Every backend fastgd knows, name -> module path.
BACKENDS = {
    "numpy": "fastgd.backends.numpy",
    "numba": "fastgd.backends.numba",
    "cython": "fastgd.backends.cython",
    "cuda": "fastgd.backends.cuda",
}


class BackendUnavailableError(RuntimeError):
    """A known backend cannot run here (not built, not installed, or no device)."""


_lock = threading.Lock()
_modules = {}  # name -> loaded module
_reasons = {}  # name -> why it is unavailable
_default = None  # process-wide default backend name, resolved lazily
_override = contextvars.ContextVar("fastgd_backend", default=None)


def _check_name(name, source="backend"):
    if not isinstance(name, str) or name not in BACKENDS:
        known = ", ".join(BACKENDS)
        raise ValueError(f"unknown {source} {name!r}; known backends: {known}")
    return name


def load(name):
    """The module of backend ``name``; raises if unknown or unavailable."""
    _check_name(name)
    with _lock:
        if name in _modules:
            return _modules[name]
        if name not in _reasons:
            try:
                _modules[name] = importlib.import_module(BACKENDS[name])
                return _modules[name]
            except BackendUnavailableError as exc:
                _reasons[name] = str(exc)
            except ImportError as exc:
                _reasons[name] = f"importing {BACKENDS[name]} failed: {exc}"
    raise BackendUnavailableError(f"backend {name!r} is unavailable: {_reasons[name]}")


def is_available(name):
    try:
        load(name)
    except BackendUnavailableError:
        return False
    return True


def available_backends():
    """Names of the backends that can run here, among numpy, numba, cython, cuda."""
    return [name for name in BACKENDS if is_available(name)]


def unavailable_reasons():
    """name -> reason, for every known backend that cannot run here."""
    available_backends()
    return dict(_reasons)


def _initial_default():
    env = os.environ.get(_config.BACKEND_ENV_VAR, "").strip()
    if env:
        _check_name(env, source=f"{_config.BACKEND_ENV_VAR} value")
        load(env)
        return env
    for name in _config.CPU_BACKEND_PREFERENCE:
        if is_available(name):
            return name
    return "numpy"


def get_backend():
    """Name of the backend used when a call passes no ``backend=``.

    In order: the innermost ``use_backend`` block of this thread/context, the last
    ``set_backend``, the ``FASTGD_BACKEND`` environment variable, and otherwise the
    fastest available CPU backend (cython, then numba, then numpy).
    """
    global _default
    name = _override.get()
    if name is not None:
        return name
    if _default is None:
        _default = _initial_default()
    return _default


def set_backend(name):
    """Make ``name`` the process-wide default backend. Raises at once if it cannot run."""
    global _default
    load(name)
    _default = name


@contextlib.contextmanager
def use_backend(name):
    """``with use_backend("numba"): ...`` runs the block on that backend.

    The choice is local to the current thread (and asyncio task); other threads keep
    their own.
    """
    load(name)
    token = _override.set(name)
    try:
        yield name
    finally:
        _override.reset(token)


def resolve(backend=None):
    """The backend module for an explicit ``backend=`` argument, or the current one."""
    return load(get_backend() if backend is None else backend)
