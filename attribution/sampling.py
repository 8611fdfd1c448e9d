"""Compiled cell models and one way to draw from them: nutpie when it compiled, PyMC's NUTS else."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import arviz as az
import pymc as pm


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

        return nutpie.sample(
            compiled.with_data(**data),
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


@dataclass
class Compiled:
    """A PyMC model and, when nutpie compiled it, its compiled form (else why it failed)."""

    model: pm.Model
    compiled: Any | None = None
    compile_error: str | None = None


class ModelCache:
    """Compiled models by structure key: each structure compiles once per process.

    Thread-safe. ``get(key, build, want_nutpie)`` returns the entry, the seconds spent building
    and compiling (0.0 on a hit) and whether nutpie compiled it now; a failed nutpie compile is
    remembered (the caller samples with PyMC) and not retried.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple, Compiled] = {}
        self._lock = threading.Lock()
        self.compilations = 0

    def get(
        self, key: tuple, build: Callable[[], pm.Model], want_nutpie: bool
    ) -> tuple[Compiled, float, bool]:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and (
                entry.compiled is not None or not want_nutpie or entry.compile_error is not None
            ):
                return entry, 0.0, False
            t0 = time.perf_counter()
            if entry is None:
                entry = Compiled(model=build())
                self._entries[key] = entry
            compiled_now = False
            if want_nutpie:
                try:
                    import nutpie

                    entry.compiled = nutpie.compile_pymc_model(entry.model)
                    self.compilations += 1
                    compiled_now = True
                except Exception as exc:  # noqa: BLE001 - any compile failure falls back to PyMC
                    entry.compile_error = f"{type(exc).__name__}: {exc}"
            return entry, time.perf_counter() - t0, compiled_now

    def clear(self) -> None:
        """Forget every entry (the next fit of each structure compiles again)."""
        with self._lock:
            self._entries.clear()
