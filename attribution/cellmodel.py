"""The one cell-model core: compile cache, sampler, divergence retry, diagnostics gate, summaries.

Every Bayesian model of this package (the uplift models on experiment cells, the g-formula on
observational cells) is a PyMC model over cells of sufficient statistics, and every one is fitted
the same way by :func:`fit`:

1. the compiled model is taken from a :class:`ModelCache` by structure key (compiled once per
   structure and kept in the process and on disk, :mod:`attribution.compiledcache`, so a new
   process loads it in a fraction of a second; new data are swapped in);
2. it is sampled with nutpie when nutpie compiled it (keeping the free variables only; the
   deterministics are computed after sampling, for all draws at once: :func:`with_deterministics`),
   else with PyMC's NUTS (one warning says so);
3. the draws are relabelled and tidied by the caller's function, and the diagnostics gate
   (:func:`attribution.diagnostics.check`) judges the published quantities;
4. divergences trigger one more run at a higher target acceptance, judged by the same gate;
5. a fit that fails the gate warns with :class:`~attribution.diagnostics.DiagnosticsWarning`.

:func:`interval` and :func:`p_text` summarise draws the same way for every model.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np
import pymc as pm

from attribution import compiledcache
from attribution import diagnostics as _diagnostics
from attribution.settings import GateSetting, IntervalSetting

# PyTensor says once per process that it found no BLAS library (pip installs): advice for its own
# developers, not for a user; the cell models are compiled by numba (nutpie) and too small to
# need one. Set here, where models are built, so scripts, notebooks and `cx` all stay quiet.
warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")

_LOG = logging.getLogger(__name__)
#: Set to 0 to compile missing models one after another in this process (see ModelCache.prefetch).
PARALLEL_ENV = "CX_PARALLEL_COMPILE"


def sample(
    model: pm.Model,
    compiled: Any | None,
    data: dict,
    *,
    draws: int,
    tune: int,
    chains: int,
    seed: int,
    target_accept: float,
    cores: int | None = None,
    **nutpie_options: Any,
) -> az.InferenceData:
    """Sample ``model`` with new ``data``: nutpie on ``compiled`` when given, else PyMC.

    Parameters
    ----------
    model : pymc.Model
        The model, with ``pm.Data`` containers named as the keys of ``data``.
    compiled : nutpie compiled model or None
        ``nutpie.compile_pymc_model(model)``; None samples with PyMC's NUTS.
    data : dict
        New values for the data containers.
    draws, tune, chains, seed, target_accept, cores
        Sampler settings, the same for both samplers.
    **nutpie_options
        Extra keywords for ``nutpie.sample`` (e.g. ``low_rank_modified_mass_matrix``).

    Returns
    -------
    arviz.InferenceData
    """
    if compiled is not None:
        import nutpie

        known = getattr(compiled, "shared_data", data)  # what the log density reads
        idata = nutpie.sample(
            compiled.with_data(**{k: v for k, v in data.items() if k in known}),
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            seed=seed,
            save_warmup=False,
            progress_bar=False,
            target_accept=target_accept,
            **nutpie_options,
        )
        return with_deterministics(model, idata, data)
    with model:
        pm.set_data(data)
        return pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            random_seed=seed,
            target_accept=target_accept,
            progressbar=False,
            compute_convergence_checks=False,
        )


def stored(model: pm.Model) -> list[str]:
    """The variables nutpie keeps per draw: the free ones only.

    Its per-draw "expand" function computing every deterministic cost as much numba compile time
    as the log density (measured on the readout models: retention 31-33 s compiled with it,
    15-24 s without; spend 18-20 s against 14-18 s), so the deterministics are computed after
    sampling instead, for all draws at once, by :func:`with_deterministics`.
    """
    return [v.name for v in model.free_RVs]


#: Per model object (PyMC models hash by identity): its deterministics' function, free and
#: deterministic names; dropped with the model.
_DETERMINISTIC_FNS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_DETERMINISTIC_LOCK = threading.Lock()


def _binary_mode():
    """PyTensor's Python linker, with one rewrite: n-ary additions and multiplications split into
    binary ones (the Python linker runs a binary one as one numpy call over all draws, an n-ary
    one element by element: 3.6 s against 0.1 s for a spend model's 4,000 draws)."""
    from pytensor.compile.mode import Mode
    from pytensor.graph.rewriting.basic import in2out, node_rewriter
    from pytensor.scalar import Add, Mul
    from pytensor.tensor.elemwise import Elemwise

    @node_rewriter([Elemwise])
    def split(fgraph, node):
        op = node.op
        if not isinstance(op.scalar_op, Add | Mul) or len(node.inputs) <= 2:
            return None
        out = node.inputs[0]
        for other in node.inputs[1:]:
            out = Elemwise(op.scalar_op)(out, other)
        return [out]

    return Mode(linker="py", optimizer=in2out(split))


def _deterministic_fn(model: pm.Model):
    """The model's deterministics as one function of the free variables with a leading draw axis
    (built once per model object: graph rewriting only, no compiler)."""
    with _DETERMINISTIC_LOCK:
        if model in _DETERMINISTIC_FNS:
            return _DETERMINISTIC_FNS[model]
        import pytensor
        import pytensor.tensor as pt
        from pytensor.graph.replace import vectorize_graph

        rvs = list(model.free_RVs)
        names = [d.name for d in model.deterministics]
        batched = {
            rv: pt.tensor(name=f"{rv.name}_draws", shape=(None,) * (rv.ndim + 1), dtype=rv.dtype)
            for rv in rvs
        }
        outs = vectorize_graph(list(model.deterministics), replace=batched)
        fn = pytensor.function(
            list(batched.values()), outs, mode=_binary_mode(), on_unused_input="ignore"
        )
        _DETERMINISTIC_FNS[model] = (fn, [rv.name for rv in rvs], names)
        return _DETERMINISTIC_FNS[model]


def with_deterministics(model: pm.Model, idata: az.InferenceData, data: dict) -> az.InferenceData:
    """Add the model's deterministics, computed on ``data`` for every draw at once, to the
    posterior of a fit that stored the free variables only (see :func:`stored`).

    The same values as computing them per draw (checked to 1e-12 on the readout models), in a
    fraction of a second.
    """
    post = idata.posterior
    if all(d.name in post for d in model.deterministics):  # none, or an entry that stored them
        return idata
    fn, rv_names, names = _deterministic_fn(model)
    with _DETERMINISTIC_LOCK:
        for name, value in data.items():  # cast as nutpie's with_data does
            model[name].set_value(np.asarray(value, dtype=model[name].dtype))
        chains, draws = post.sizes["chain"], post.sizes["draw"]
        values = fn(*[post[n].values.reshape(chains * draws, *post[n].shape[2:]) for n in rv_names])
    dims = model.named_vars_to_dims
    added = {}
    for name, value in zip(names, values, strict=True):
        value = np.asarray(value).reshape(chains, draws, *np.shape(value)[1:])
        var_dims = dims.get(name) or tuple(f"{name}_dim_{i}" for i in range(value.ndim - 2))
        added[name] = (("chain", "draw", *var_dims), value)
    coords = {
        d: list(model.coords[d])
        for name in names
        for d in dims.get(name, ())
        if d not in post.coords and model.coords.get(d) is not None
    }
    idata.posterior = post.assign(added).assign_coords(coords)
    return idata


@dataclass
class Compiled:
    """A PyMC model and, when nutpie compiled it, its compiled form (else why it failed)."""

    model: pm.Model
    compiled: Any | None = None
    compile_error: str | None = None
    fingerprint: str | None = None  # the disk cache's name for it, computed once


class ModelCache:
    """Compiled models by structure key: in this process, and on disk across processes.

    Thread-safe. ``get(key, build, want_nutpie)`` returns the entry, the seconds spent building
    and compiling or loading (0.0 on an in-process hit) and where the compiled model came from:
    ``"memory"`` (compiled earlier in this process), ``"disk"`` (a new process loading what an
    earlier one compiled, :mod:`attribution.compiledcache`), ``"compiled"`` (nutpie compiled it
    now; it is then stored on disk) or ``"none"`` (no nutpie: PyMC samples). A failed nutpie
    compile is remembered (the caller samples with PyMC) and not retried.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple, Compiled] = {}
        self._lock = threading.Lock()
        self.requests = 0  # every fit asks once: work done, countable in tests
        self.compilations = 0
        self.disk_loads = 0
        self.helper_compilations = 0
        self._helper_seconds: dict[tuple, float] = {}

    def prefetch(self, jobs: Sequence[tuple[tuple, Callable[..., pm.Model], tuple]]) -> int:
        """Compile the missing ones of several structures at once, one helper process each.

        Compiling is single-threaded Python (numba's typing) and costs far more than sampling,
        so the first run on a machine compiles the models it will need side by side, on as many
        cores as there are models (at most ``os.cpu_count()``); each helper stores its model in
        the disk cache and :meth:`get` then loads it, reporting the helper's compile time.

        Parameters
        ----------
        jobs : sequence of (key, build, args)
            Structure key, a module-level function and its (picklable) arguments that build
            the PyMC model. Does nothing when fewer than two are missing, with one core, with
            the disk cache off or ``CX_PARALLEL_COMPILE=0``; a helper that fails leaves its
            model to :meth:`get`, which compiles it in this process.

        Returns
        -------
        int
            How many models the helpers compiled.
        """
        folder = compiledcache.directory()
        cores = os.cpu_count() or 1
        if folder is None or cores < 2 or os.environ.get(PARALLEL_ENV, "1").strip() == "0":
            return 0
        missing = []
        for key, build, args in jobs:
            with self._lock:
                if key in self._entries:
                    continue
                # built once: get() takes this entry as it is and loads or compiles it
                entry = self._entries[key] = Compiled(model=build(*args))
            entry.fingerprint = compiledcache.fingerprint(entry.model, key)
            if not compiledcache.stored(entry.fingerprint, folder):
                missing.append((key, build, args))
        if len(missing) < 2:
            return 0
        before = self.helper_compilations
        with tempfile.TemporaryDirectory(prefix="cx-compile-") as tmp:
            running = []
            for i, (key, build, args) in enumerate(missing):
                job = Path(tmp) / f"job{i}.pkl"
                job.write_bytes(pickle.dumps((build, args, key, str(folder))))
                running.append((key, _helper(job)))
                if len(running) >= cores:  # at most one helper per core
                    self._collect(*running.pop(0))
            for key, proc in running:
                self._collect(key, proc)
        return self.helper_compilations - before

    def get(
        self, key: tuple, build: Callable[[], pm.Model], want_nutpie: bool
    ) -> tuple[Compiled, float, str]:
        with self._lock:
            self.requests += 1
            entry = self._entries.get(key)
            if entry is not None and (
                entry.compiled is not None or not want_nutpie or entry.compile_error is not None
            ):
                return entry, 0.0, "memory" if entry.compiled is not None else "none"
            t0 = time.perf_counter()
            if entry is None:
                entry = Compiled(model=build())
                self._entries[key] = entry
            source = "none"
            if want_nutpie:
                folder = compiledcache.directory()
                if folder is not None and entry.fingerprint is None:
                    entry.fingerprint = compiledcache.fingerprint(entry.model, key)
                with compiledcache.compiling(entry.fingerprint, folder):
                    source, helper_s = self._load_or_compile(entry, key, folder)
                t0 -= helper_s  # a helper's compile time counts as this fit's
            return entry, time.perf_counter() - t0, source

    def _load_or_compile(
        self, entry: Compiled, key: tuple, folder: Path | None
    ) -> tuple[str, float]:
        """Fill ``entry.compiled`` from the disk cache, a helper's work or nutpie; say which
        (and the seconds a helper spent compiling it)."""
        if folder is not None:
            entry.compiled, _ = compiledcache.load(entry.model, entry.fingerprint, folder)
        helper_s = self._helper_seconds.pop(key, None)
        if entry.compiled is not None and helper_s is not None:
            self.compilations += 1
            return "compiled", helper_s  # by a helper process, just now
        if entry.compiled is not None:
            self.disk_loads += 1
            return "disk", 0.0
        try:
            import nutpie

            entry.compiled = nutpie.compile_pymc_model(entry.model, var_names=stored(entry.model))
        except Exception as exc:  # noqa: BLE001 - any failure falls back to PyMC
            entry.compile_error = f"{type(exc).__name__}: {exc}"
            return "none", 0.0
        self.compilations += 1
        if folder is not None:
            compiledcache.save(entry.compiled, entry.fingerprint, folder)
        return "compiled", 0.0

    def _collect(self, key: tuple, proc: subprocess.Popen) -> None:
        out, _ = proc.communicate()
        try:
            seconds = float(out.strip().splitlines()[-1])
        except (ValueError, IndexError):  # get() compiles it in this process instead
            err = Path(proc.args[-1]).with_suffix(".err").read_text()[-2000:]
            _LOG.info("a helper could not compile %s: %s", key, err)
            return
        self._helper_seconds[key] = seconds
        self.helper_compilations += 1

    def clear(self) -> None:
        """Forget every in-process entry (the next fit of each structure loads or compiles)."""
        with self._lock:
            self._entries.clear()


def _helper(job: Path) -> subprocess.Popen:
    """Start a helper process compiling the model described in ``job`` (see helper_main).

    Its messages go to a file beside the job (read only when it fails), never to the user.
    """
    code = "from attribution.cellmodel import helper_main; helper_main()"
    with open(job.with_suffix(".err"), "w") as err:
        return subprocess.Popen(
            [sys.executable, "-c", code, str(job)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )


def helper_main() -> None:
    """In a helper process: build, compile with nutpie, store on disk; print the seconds.

    A plain child process (not multiprocessing), so it works whatever started the parent: a
    script, ``python -c``, stdin or a notebook kernel.
    """
    import nutpie

    build, args, key, folder = pickle.loads(Path(sys.argv[1]).read_bytes())
    t0 = time.perf_counter()
    model = build(*args)
    compiled = nutpie.compile_pymc_model(model, var_names=stored(model))
    if compiledcache.save(compiled, compiledcache.fingerprint(model, key), Path(folder)) is None:
        raise SystemExit("the compiled model could not be stored")
    print(time.perf_counter() - t0)


@dataclass(frozen=True)
class SamplerSettings:
    """How a cell model is sampled (the same for every model of a run).

    ``seed=None`` draws a fresh seed; ``target_accept`` is NUTS' target acceptance and
    ``retry_target_accept`` the one used once more after divergences (None: never retry).
    """

    sampler: str = "nutpie"
    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    cores: int | None = None
    seed: int | None = None
    target_accept: float = 0.95
    retry_target_accept: float | None = 0.99
    nutpie_options: dict = field(default_factory=dict)
    single_blas_thread: bool = False


@dataclass(frozen=True)
class Fitted:
    """What :func:`fit` returns: the tidied draws, the gate's verdict and how they were made."""

    idata: az.InferenceData
    diagnostics: _diagnostics.Diagnostics
    sampler: str
    compiled: bool
    cache: str
    target_accept: float
    compile_s: float
    sample_s: float


def fit(
    cache: ModelCache,
    key: tuple,
    build: Callable[[], pm.Model],
    data: dict,
    *,
    what: str,
    published: Sequence[str],
    settings: SamplerSettings,
    gate: GateSetting | None = None,
    tidy: Callable[[az.InferenceData], az.InferenceData] = lambda idata: idata,
    report: Callable[[pm.Model], list[str]] = lambda model: [],
) -> Fitted:
    """Fit a cell model: cached compile, sample, tidy, gate, retry on divergences.

    Parameters
    ----------
    cache : ModelCache
        Where compiled models of this family live.
    key : tuple
        The structure key (what the compiled model depends on).
    build : callable
        Builds the PyMC model on a cache miss.
    data : dict
        Values for the model's data containers.
    what : str
        The model's name in warnings (e.g. ``"retention uplift"``).
    published : sequence of str
        Posterior variables the gate judges.
    settings : SamplerSettings
    gate : GateSetting, optional
        Default :data:`attribution.settings.GATE`.
    tidy : callable
        Relabels / trims the sampled InferenceData before the gate.
    report : callable
        Names of further variables to report (not gate), given the model.

    Returns
    -------
    Fitted
    """
    want_nutpie = settings.sampler == "nutpie"
    entry, compile_s, source = cache.get(key, build, want_nutpie)
    use_nutpie = want_nutpie and entry.compiled is not None
    if want_nutpie and not use_nutpie:
        warnings.warn(
            f"nutpie could not compile the {what} model ({entry.compile_error}); sampling with "
            "PyMC's NUTS instead",
            RuntimeWarning,
            stacklevel=3,
        )
    seed = settings.seed
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
    hyper = report(entry.model)

    def run(target_accept: float):
        limit = contextlib.nullcontext()
        if settings.single_blas_thread:
            from threadpoolctl import threadpool_limits

            limit = threadpool_limits(limits=1, user_api="blas")
        with limit:
            idata = sample(
                entry.model,
                entry.compiled if use_nutpie else None,
                data,
                draws=settings.draws,
                tune=settings.tune,
                chains=settings.chains,
                cores=settings.cores,
                seed=seed,
                target_accept=target_accept,
                **(settings.nutpie_options if use_nutpie else {}),
            )
        idata = tidy(idata)
        # what tidy dropped (a variable of padding only) is not reported
        kept = [name for name in hyper if name in idata.posterior.data_vars]
        return idata, _diagnostics.check(idata, published, gate=gate, report=kept)

    t0 = time.perf_counter()
    target_accept = settings.target_accept
    idata, checked = run(target_accept)
    retry = settings.retry_target_accept
    if checked.divergences > 0 and retry is not None and retry > target_accept:
        # Divergences mean the step size was too large for some of the posterior's geometry;
        # the standard remedy is a smaller step (higher target acceptance). The gate still
        # applies to the retried fit, so a fit that stays bad is still not published.
        target_accept = retry
        idata, checked = run(target_accept)
    sample_s = time.perf_counter() - t0
    if not checked.passed:
        warnings.warn(
            f"{what} fit failed the diagnostics gate; do not publish: "
            + "; ".join(checked.reasons),
            _diagnostics.DiagnosticsWarning,
            stacklevel=3,
        )
    return Fitted(
        idata=idata,
        diagnostics=checked,
        sampler="nutpie" if use_nutpie else "pymc",
        compiled=source == "compiled",
        cache=source,
        target_accept=target_accept,
        compile_s=compile_s,
        sample_s=sample_s,
    )


def relabel(idata: az.InferenceData, coords: dict[str, list[str]]) -> az.InferenceData:
    """Put this fit's labels on draws sampled with a cached model built for other labels."""
    for group in idata.groups():
        ds = idata[group]
        new = {k: v for k, v in coords.items() if k in ds.dims}
        if new:
            idata[group] = ds.assign_coords(new)
    return idata


def padded_count(n: int, minimum: int) -> int:
    """How many of something (segments, bands, coefficients) a model is built for: ``n`` rounded
    up to ``minimum``, 2 x ``minimum``, 4 x ``minimum``, ... (0 stays 0), so similar data share
    one compiled model.

    Examples
    --------
    >>> [padded_count(n, 4) for n in (0, 1, 4, 5, 9)]
    [0, 4, 4, 8, 16]
    """
    return 0 if n == 0 else max(minimum, 1 << (n - 1).bit_length())


def unpad(idata: az.InferenceData, keep: dict[str, list[str]]) -> az.InferenceData:
    """Keep only the labels in ``keep`` (dimension -> real labels) in every group of a fit:
    what a model padded for a shared compiled structure drops before anything is reported or
    gated. A variable left with no values (it was padding only) goes too."""
    for group in idata.groups():
        ds = idata[group]
        sel = {d: labels for d, labels in keep.items() if d in ds.dims}
        if sel and any(ds.sizes[d] != len(labels) for d, labels in sel.items()):
            ds = ds.sel(sel)
            idata[group] = ds.drop_vars([v for v in ds.data_vars if ds[v].size == 0])
    return idata


def interval(draws: np.ndarray, setting: IntervalSetting) -> tuple[float, float]:
    """The interval of :data:`attribution.settings.INTERVAL` (or ``setting``) over draws.

    Examples
    --------
    >>> [round(x, 6) for x in interval(np.arange(101.0), IntervalSetting(0.9))]
    [5.0, 95.0]
    """
    if setting.kind == "hdi":
        lo, hi = az.hdi(np.asarray(draws), hdi_prob=setting.width)
    else:
        lo, hi = np.quantile(draws, setting.quantiles)
    return float(lo), float(hi)


def summarise_draws(draws: np.ndarray, setting: IntervalSetting) -> dict[str, float]:
    """Mean, interval (``lo``, ``hi``) and P(> 0) of draws: the numbers of every summary row.

    Examples
    --------
    >>> summarise_draws(np.arange(-50.0, 51.0), IntervalSetting(0.9))
    {'mean': 0.0, 'lo': -45.0, 'hi': 45.0, 'p_positive': 0.49504950495049505}
    """
    x = np.asarray(draws, dtype=float).ravel()
    lo, hi = interval(x, setting)
    return {"mean": float(x.mean()), "lo": lo, "hi": hi, "p_positive": float((x > 0).mean())}


def p_text(p: float) -> str:
    """P(effect > 0) in words, clipped at 0.01 / 0.99.

    Examples
    --------
    >>> p_text(0.999), p_text(0.5)
    ('P(>0) > 0.99', 'P(>0) = 0.50')
    """
    if p > 0.995:
        return "P(>0) > 0.99"
    if p < 0.005:
        return "P(>0) < 0.01"
    return f"P(>0) = {p:.2f}"
