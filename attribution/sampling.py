"""One way to draw from a compiled cell model: nutpie when it compiled, PyMC's NUTS otherwise."""

from __future__ import annotations

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
