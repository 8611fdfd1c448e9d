"""The diagnostics gate: may a fit's published quantities be trusted?

A fit passes when every *published* quantity (the effects, the money) has R-hat, bulk ESS and tail
ESS inside the thresholds of :data:`attribution.settings.GATE` and the sampler reported no more
divergent transitions than the gate allows. Hyper-parameters (pooling scales and the like) are
reported in the same table but do not gate: their ESS is often low in hierarchical models while the
effects themselves are well estimated (see DESIGN.md, "Honest uncertainty").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import arviz as az
import numpy as np
import pandas as pd

from attribution import settings
from attribution.checks import FAIL, PASS, Check
from attribution.errors import InputError
from attribution.settings import GateSetting

__all__ = ["Diagnostics", "DiagnosticsWarning", "check"]

_COLUMNS = ["variable", "gated", "size", "max_rhat", "min_ess_bulk", "min_ess_tail", "passed"]


class DiagnosticsWarning(UserWarning):
    """A fit failed the diagnostics gate; its estimates must not be published."""


@dataclass(frozen=True)
class Diagnostics:
    """Result of :func:`check`: the gate's verdict, its reasons and a per-variable table.

    Attributes
    ----------
    max_rhat, min_ess_bulk, min_ess_tail : float
        Worst values over the gated (published) variables; NaN where they could not be computed.
    divergences : int
        Divergent transitions over all chains (post-warmup).
    table : pandas.DataFrame
        One row per variable: ``variable, gated, size, max_rhat, min_ess_bulk, min_ess_tail,
        passed``. Rows with ``gated=False`` are reported only.
    passed : bool
        True when every gated variable and the divergence count are inside the gate.
    reasons : list of str
        Plain-words failures, empty when ``passed``.
    gate : GateSetting
        The thresholds used.
    """

    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int
    table: pd.DataFrame
    passed: bool
    reasons: list[str]
    gate: GateSetting

    def summary(self) -> pd.DataFrame:
        """The per-variable table (a copy)."""
        return self.table.copy()

    def describe(self) -> str:
        """One plain sentence on the verdict, followed by the reasons when it failed."""
        head = (
            f"max R-hat {_fmt(self.max_rhat, '.3f')}, min bulk ESS {_fmt(self.min_ess_bulk, '.0f')}"
            f", min tail ESS {_fmt(self.min_ess_tail, '.0f')}, {self.divergences} divergences"
        )
        if self.passed:
            return f"Diagnostics passed the gate ({head})."
        return f"Diagnostics failed the gate ({head}): " + "; ".join(self.reasons) + "."

    def as_check(self, subject: str = "") -> Check:
        """The gate's verdict in the shape every check has (``fail`` when the gate failed), the
        per-variable table behind it; ``subject`` names the model (``"retention by tier"``)."""
        return Check(
            "diagnostics",
            PASS if self.passed else FAIL,
            self.describe(),
            self.summary(),
            subject=subject,
        )

    def to_dict(self) -> dict:
        """JSON-ready form for the run registry (NaN becomes None)."""
        return {
            "passed": self.passed,
            "max_rhat": _none_if_nan(self.max_rhat),
            "min_ess_bulk": _none_if_nan(self.min_ess_bulk),
            "min_ess_tail": _none_if_nan(self.min_ess_tail),
            "divergences": self.divergences,
            "reasons": list(self.reasons),
            "gate": {
                "max_rhat": self.gate.max_rhat,
                "min_ess_bulk": self.gate.min_ess_bulk,
                "min_ess_tail": self.gate.min_ess_tail,
                "max_divergences": self.gate.max_divergences,
            },
            "variables": [
                {k: (_none_if_nan(v) if isinstance(v, float) else v) for k, v in row.items()}
                for row in self.table.to_dict(orient="records")
            ],
        }

    def __str__(self) -> str:
        return self.describe()


def check(
    idata: az.InferenceData,
    var_names: Sequence[str],
    gate: GateSetting | None = None,
    report: Sequence[str] = (),
) -> Diagnostics:
    """Check a fit against the diagnostics gate.

    Parameters
    ----------
    idata : arviz.InferenceData
        Posterior draws with a ``posterior`` group and, ideally, ``sample_stats.diverging``.
    var_names : sequence of str
        The published quantities; these gate the fit.
    gate : GateSetting, optional
        Thresholds; default :data:`attribution.settings.GATE` (read at call time).
    report : sequence of str
        Further variables (hyper-parameters) to report in the table without gating.

    Returns
    -------
    Diagnostics

    Examples
    --------
    >>> import arviz as az
    >>> idata = az.from_dict(posterior={"effect": np.random.default_rng(0).normal(size=(4, 500))})
    >>> check(idata, ["effect"]).passed
    True
    """
    gate = settings.GATE if gate is None else gate
    gated = list(dict.fromkeys(var_names))
    if not gated:
        raise InputError("check needs at least one published variable in var_names")
    reported = [v for v in dict.fromkeys(report) if v not in gated]
    if not hasattr(idata, "posterior"):
        raise InputError("idata has no posterior group; nothing to check")
    missing = [v for v in gated + reported if v not in idata.posterior.data_vars]
    if missing:
        raise InputError(
            f"variables not in the posterior: {missing}; "
            f"posterior has {sorted(idata.posterior.data_vars)}"
        )

    rows = []
    reasons: list[str] = []
    for name in gated + reported:
        row = _variable_row(idata.posterior[[name]], name, gate)
        row["gated"] = name in gated
        rows.append(row)
        if row["gated"]:
            reasons += _variable_reasons(row, gate)
    table = pd.DataFrame(rows, columns=_COLUMNS)

    divergences = 0
    if hasattr(idata, "sample_stats") and "diverging" in idata.sample_stats:
        divergences = int(np.asarray(idata.sample_stats["diverging"]).sum())
    if divergences > gate.max_divergences:
        reasons.append(
            f"{divergences} divergent transitions (the gate allows {gate.max_divergences})"
        )

    g = table[table["gated"]]
    return Diagnostics(
        max_rhat=_worst(g["max_rhat"], max),
        min_ess_bulk=_worst(g["min_ess_bulk"], min),
        min_ess_tail=_worst(g["min_ess_tail"], min),
        divergences=divergences,
        table=table,
        passed=not reasons,
        reasons=reasons,
        gate=gate,
    )


def _variable_row(ds, name: str, gate: GateSetting) -> dict:
    """R-hat and ESS of one variable, worst element."""
    size = int(np.prod([ds[name].sizes[d] for d in ds[name].dims if d not in ("chain", "draw")]))
    rhat = np.asarray(az.rhat(ds)[name], dtype=float)
    bulk = np.asarray(az.ess(ds, method="bulk")[name], dtype=float)
    tail = np.asarray(az.ess(ds, method="tail")[name], dtype=float)
    row = {
        "variable": name,
        "size": size,
        "max_rhat": float("nan") if np.isnan(rhat).any() else float(rhat.max()),
        "min_ess_bulk": float("nan") if np.isnan(bulk).any() else float(bulk.min()),
        "min_ess_tail": float("nan") if np.isnan(tail).any() else float(tail.min()),
    }
    row["passed"] = not _variable_reasons(row, gate)
    return row


def _variable_reasons(row: dict, gate: GateSetting) -> list[str]:
    name, out = row["variable"], []
    if math.isnan(row["max_rhat"]):
        out.append(f"{name}: R-hat could not be computed (too few draws)")
    elif row["max_rhat"] > gate.max_rhat:
        out.append(f"{name}: R-hat {row['max_rhat']:.3f} is above {gate.max_rhat}")
    for key, label, limit in (
        ("min_ess_bulk", "bulk", gate.min_ess_bulk),
        ("min_ess_tail", "tail", gate.min_ess_tail),
    ):
        if math.isnan(row[key]):
            out.append(f"{name}: {label} ESS could not be computed (too few draws)")
        elif row[key] < limit:
            out.append(f"{name}: {label} ESS {row[key]:.0f} is below {limit:.0f}")
    return out


def _worst(values: pd.Series, pick) -> float:
    vals = [float(v) for v in values]
    if not vals or any(math.isnan(v) for v in vals):
        return float("nan")
    return float(pick(vals))


def _fmt(x: float, spec: str) -> str:
    return "n/a" if math.isnan(x) else format(x, spec)


def _none_if_nan(x):
    return None if isinstance(x, float) and math.isnan(x) else x
