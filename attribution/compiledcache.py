"""Compiled cell models on disk, so a new process (a nightly refresh, a notebook) does not compile.

nutpie compiles a PyMC model in two steps: PyTensor turns the log density and its gradient into
numba functions (PyTensor keeps those in its own disk cache), then nutpie wraps them in two
``numba.cfunc`` C callbacks that the Rust sampler calls. The wrappers cannot go into numba's
cache (they close over per-model objects) and compiling them links and optimises the whole call
graph again: 15-20 s a model on 2 cores, every process. This module keeps the finished machine
code of both callbacks instead, with what is needed to call them, and rebuilds nutpie's compiled
model from it in well under a second.

Written here rather than taken from a library because neither nutpie (0.16) nor numba offers a
persistent cache for ``cfunc`` callbacks; the mechanism is numba's own (its object-code
serialisation of a code library, the same one its ``cache=True`` uses), applied to nutpie's
callbacks. It is used only when the callbacks have no process-specific addresses in them (numba's
"dynamic globals"); otherwise nothing is stored.

An entry is one file named by a hash of the model's structure: its caller's structure key, a
printout of the log-density and deterministic graphs (so any change to how a model is built
changes the name), the data shapes and the CPU numba compiles for. Inside, it records the package
versions that built it; an entry from other versions, an unreadable or altered entry is never
used: it is rebuilt and replaced, and one warning line on the ``attribution.compiledcache`` logger
says why. Writes go to a temporary file in the same folder and are renamed into place, so two
processes filling the cache at once each see either no entry or a whole one; and a process about
to compile a model another one is compiling waits for it (:func:`compiling`) and loads its entry.

Where: :func:`directory` (``$CX_MODEL_CACHE``, else ``$XDG_CACHE_HOME/cx-attribution/models``,
else ``~/.cache/cx-attribution/models``; ``CX_MODEL_CACHE=off`` turns the disk cache off), or
:func:`set_directory` from Python.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import pickle
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from attribution.versions import installed

_LOG = logging.getLogger(__name__)

FORMAT = 2
_PACKAGES = ("numpy", "numba", "llvmlite", "pytensor", "pymc", "nutpie", "cx-attribution")
_OFF = ("off", "none", "0", "false")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")
_override: Path | None | str = "unset"


def set_directory(path: str | Path | None) -> None:
    """Use ``path`` for compiled models in this process (None: no disk cache).

    Parameters
    ----------
    path : str, pathlib.Path or None
        A folder (created on first write); None turns the disk cache off.
    """
    global _override
    _override = None if path is None else Path(path).expanduser()


def directory() -> Path | None:
    """The folder compiled models are kept in, or None when the disk cache is off."""
    if _override != "unset":
        return _override  # type: ignore[return-value]
    env = os.environ.get("CX_MODEL_CACHE", "").strip()
    if env.lower() in _OFF:
        return None
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or Path.home() / ".cache"
    return Path(base) / "cx-attribution" / "models"


def versions() -> dict[str, str]:
    """The package versions and platform an entry must match to be used."""
    return {"python": sys.version.split()[0], "format": str(FORMAT), **installed(_PACKAGES)}


def _cpu() -> str:
    from numba.core.registry import cpu_target

    return repr(cpu_target.target_context.codegen().magic_tuple())


def fingerprint(model: Any, key: tuple) -> str:
    """A hash of everything the compiled callbacks depend on (not of the data values)."""
    import pytensor

    graph = pytensor.printing.debugprint(
        [model.logp(), *model.deterministics], file="str", print_type=True
    )
    graph = _ADDRESS.sub("0x", graph)  # random generators print their memory address
    shapes = {
        name: (np.shape(var.get_value()), str(var.dtype))
        for name, var in sorted(model.named_vars.items())
        if hasattr(var, "get_value")
    }
    sizes = {dim: len(labels) for dim, labels in model.coords.items() if labels is not None}
    parts = [repr(key), graph, repr(sorted(shapes.items())), repr(sorted(sizes.items()))]
    parts += [repr(model.check_bounds), _cpu()]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _path(folder: Path, fp: str) -> Path:
    return folder / f"{fp[:40]}.nutpie"


def stored(fp: str, folder: Path | None = None) -> bool:
    """Whether an entry for fingerprint ``fp`` exists (it may still prove unusable on load)."""
    folder = directory() if folder is None else folder
    return folder is not None and _path(folder, fp).exists()


@contextlib.contextmanager
def compiling(fp: str | None, folder: Path | None = None) -> Iterator[None]:
    """Hold the entry ``fp`` while loading or compiling it, so that processes needing the same
    model at once compile it once: the others wait, then load what the first one stored.

    An exclusive ``flock`` on a lock file beside the entry; the system releases it when its
    holder ends, however it ends. Without a cache folder or fingerprint (None), or a folder
    that cannot be written, there is nothing to hold (each process compiles, as before).
    """
    if folder is None or not fp:
        yield
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / f"{fp[:40]}.lock", "a")  # noqa: SIM115 - held across the yield
    except OSError:
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load(model: Any, fp: str, folder: Path | None = None) -> tuple[Any | None, str]:
    """nutpie's compiled model for ``model`` from the disk cache, if a usable entry exists.

    Parameters
    ----------
    model : pymc.Model
    fp : str
        The model's :func:`fingerprint`.
    folder : pathlib.Path, optional
        Default :func:`directory`.

    Returns
    -------
    compiled : nutpie compiled model or None
    status : str
        ``"hit"``, ``"off"`` (no cache folder), ``"absent"``, or why an entry was not used
        (it is then rebuilt by the caller and :func:`save` replaces it).
    """
    folder = directory() if folder is None else folder
    if folder is None:
        return None, "off"
    path = _path(folder, fp)
    if not path.exists():
        return None, "absent"
    try:
        return _rebuild(model, _read(path, fp)), "hit"
    except Exception as exc:  # noqa: BLE001 - any unusable entry is rebuilt, never used
        reason = f"{type(exc).__name__}: {exc}" if not isinstance(exc, _UnusableError) else str(exc)
        _LOG.warning("compiled model cache: %s is unusable (%s); compiling again", path, reason)
        return None, f"rebuilt: {reason}"


class _UnusableError(Exception):
    pass


def _read(path: Path, fp: str) -> dict:
    entry = pickle.loads(path.read_bytes())
    if not isinstance(entry, dict) or entry.get("format") != FORMAT:
        raise _UnusableError("unknown entry format")
    now = versions()
    if entry.get("versions") != now:
        old = entry.get("versions") or {}
        diff = [f"{k} {old.get(k)} -> {v}" for k, v in now.items() if old.get(k) != v]
        raise _UnusableError("built with other package versions: " + ", ".join(diff))
    if entry.get("fingerprint") != fp:
        raise _UnusableError("built for another model structure")
    payload = entry.get("payload", b"")
    if hashlib.sha256(payload).hexdigest() != entry.get("sha256"):
        raise _UnusableError("its contents do not match their checksum")
    return pickle.loads(payload)


def _rebuild(model: Any, state: dict) -> Any:
    import nutpie.compile_pymc as ncp
    from numba.core.registry import cpu_target
    from pymc.initial_point import make_initial_point_fn

    codegen = cpu_target.target_context.codegen()
    logp = _Callback(codegen, *state["logp"])
    expand = _Callback(codegen, *state["expand"])
    names, _, shapes = state["shape_info"]
    n_free = len(model.free_RVs)
    if [model.rvs_to_values[rv].name for rv in model.free_RVs] != list(names[:n_free]):
        raise _UnusableError("its free variables differ from the model's")
    # The initial point function is PyMC's, as in nutpie.compile_pymc_model (support point with
    # jitter), flattened in the sampler's variable order.
    initial = make_initial_point_fn(
        model=model,
        default_strategy="support_point",
        jitter_rvs=set(model.free_RVs),
        return_transformed=True,
    )
    initial = ncp._rv_dict_to_flat_array_wrapper(
        ncp._wrap_with_lock(initial), names=names[:n_free], shapes=shapes[:n_free]
    )
    shared = {}
    for name in state["shared"]:
        var = model.named_vars.get(name)
        if var is None or not hasattr(var, "get_value"):
            raise _UnusableError(f"the model has no data container {name!r}")
        shared[name] = np.array(var.get_value(), order="C", copy=True)
        shared[name].flags.writeable = False
    user_data = np.zeros((), dtype=state["dtype"])
    ncp.update_user_data(user_data, shared)
    dims, coords = ncp._prepare_dims_and_coords(model, state["shape_info"])
    return ncp.CompiledPyMCModel(
        _n_dim=state["n_dim"],
        dims=dims,
        _coords=coords,
        _shapes={name: tuple(shape) for name, _, shape in zip(*state["shape_info"], strict=True)},
        compiled_logp_func=logp,
        compiled_expand_func=expand,
        initial_point_func=initial,
        shared_data=shared,
        user_data=np.asarray(user_data),
        n_expanded=state["n_expanded"],
        shape_info=state["shape_info"],
        logp_func=None,
        expand_func=None,
    )


def _serialise(compiled: Any) -> bytes | None:
    """The callbacks' machine code and what rebuilding needs; None when it holds addresses."""
    callbacks = (compiled.compiled_logp_func, compiled.compiled_expand_func)
    if any(cb._library.has_dynamic_globals for cb in callbacks):
        return None
    state = {
        "logp": (callbacks[0]._library.serialize_using_object_code(), callbacks[0]._wrapper_name),
        "expand": (callbacks[1]._library.serialize_using_object_code(), callbacks[1]._wrapper_name),
        "dtype": compiled.user_data.dtype,
        "shared": list(compiled.shared_data),
        "n_dim": compiled.n_dim,
        "n_expanded": compiled.n_expanded,
        "shape_info": compiled.shape_info,
    }
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


class _Callback:
    """A C callback loaded from stored object code: what nutpie's sampler reads is ``address``."""

    def __init__(self, codegen: Any, serialized: tuple, symbol: str) -> None:
        self._library = codegen.unserialize_library(serialized)
        self.address = self._library.get_pointer_to_function(symbol)
        if not self.address:
            raise _UnusableError(f"symbol {symbol} not found in the stored code")


def save(compiled: Any, fp: str, folder: Path | None = None) -> Path | None:
    """Store nutpie's freshly ``compiled`` model under its :func:`fingerprint` ``fp``.

    Returns the entry's path.

    Nothing is stored (None) when the disk cache is off, when the callbacks hold
    process-specific addresses, or when the folder cannot be written (one warning line).
    """
    folder = directory() if folder is None else folder
    if folder is None:
        return None
    try:
        payload = _serialise(compiled)
    except Exception as exc:  # noqa: BLE001 - e.g. another nutpie's internals: compile each time
        _LOG.warning("compiled model cache: this compiled model cannot be stored (%s)", exc)
        return None
    if payload is None:
        _LOG.info("compiled model cache: callbacks hold process addresses; not stored")
        return None
    entry = {
        "format": FORMAT,
        "versions": versions(),
        "fingerprint": fp,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "payload": payload,
    }
    path = _path(folder, fp)
    tmp = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".tmp-", delete=False) as f:
            tmp = Path(f.name)
            f.write(pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(tmp, path)
    except OSError as exc:
        _LOG.warning("compiled model cache: could not write %s (%s); not stored", path, exc)
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        return None
    return path
