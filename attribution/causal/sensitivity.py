"""How strong a hidden confounder would have to be to erase the ATTs that money is built on.

The refuters' sensitivity analysis (:mod:`attribution.causal.refuters`) runs DoWhy's
Cinelli-Hazlett analyzer on the additive regression, the model it is defined for. Money is built
on other estimates (the weighting route's and the cell route's ATT draws), so the same omitted-
variable bias is carried over to them here (Cinelli and Hazlett 2020, section 4): a hidden
confounder ``U`` with partial R-squared ``r2_t`` with the treatment and ``r2_y`` with the outcome
(given the confounders) moves an estimate by at most

    bias = sqrt(r2_y r2_t / (1 - r2_t)) x sd(Y | T, X) / sd(T | X)

with the residual standard deviations of the linear models of the outcome and the treatment.
For each ATT this gives

* the **robustness value**: the strength (equal partial R-squared with treatment and outcome)
  that would bring the estimate to zero, ``RV = (sqrt(f^4 + 4 f^2) - f^2) / 2`` with
  ``f = |estimate| sd(T | X) / sd(Y | T, X)``;
* the same for the interval's end nearest zero (the strength that would make it include zero);
* the interval moved toward zero by the bias of a confounder as strong as each observed numeric
  confounder (its partial R-squared from the refuter's benchmarks) and widened around the moved
  estimate by ``sqrt((1 - r2_y) / (1 - r2_t))`` (the standard error with the confounder in the
  model, as DoWhy's ``compute_bias_adjusted`` does), and a verdict: ``pass`` when every such
  interval stays clear of zero, else ``warn``.

For the weighting and cell routes the bias bound is the linear model's, carried over: exact for
the regression, an approximation elsewhere, and said so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from attribution.causal.terms import ESTIMATORS, TREATED, outcome_column
from attribution.causal.terms import fmt_effect as _fmt

__all__ = ["MONEY_ESTIMATORS", "Sensitivity", "bias", "money_sensitivity", "robustness_value"]

#: Estimators whose ATT draws become money (see :func:`attribution.causal.workflow._money`).
MONEY_ESTIMATORS = ("dowhy_psw", "bayes_gformula")


@dataclass(frozen=True)
class Sensitivity:
    """Hidden-confounder sensitivity of one overall ATT that feeds money.

    Attributes
    ----------
    estimator, outcome : str
    mean, lo, hi : float
        The ATT and its interval.
    robustness_value : float
        Partial R-squared (with treatment and with outcome alike) of a hidden confounder that
        would bring the estimate to zero.
    robustness_value_interval : float
        The same for the interval's end nearest zero (0 when the interval already holds zero).
    benchmarks : list of dict
        Per observed numeric confounder: ``benchmark``, ``r2_treatment``, ``r2_outcome``,
        ``bias``, ``adjusted_lo``, ``adjusted_hi`` (the interval moved toward zero).
    verdict : str
        ``pass`` (every benchmark-strength confounder leaves the interval clear of zero),
        ``warn``, or ``not checked`` (no benchmarks: the sensitivity refuter did not run).
    """

    estimator: str
    outcome: str
    mean: float
    lo: float
    hi: float
    robustness_value: float
    robustness_value_interval: float
    benchmarks: list[dict] = field(default_factory=list)
    verdict: str = "not checked"

    @property
    def sentence(self) -> str:
        """The check in words."""
        o = self.outcome
        near = (
            "its interval already holds zero"
            if self.lo <= 0 <= self.hi
            else f"{100 * self.robustness_value_interval:.1f}% would bring its interval to zero"
        )
        text = (
            f"{ESTIMATORS[self.estimator]} ATT of {o}: a hidden confounder explaining "
            f"{100 * self.robustness_value:.1f}% of the remaining variation of both treatment and "
            f"outcome would erase it ({near})"
        )
        if not self.benchmarks:
            return text + "."
        worst = min(self.benchmarks, key=lambda b: _clearance(self.mean, b))
        moved = (
            f"; one as strong as the observed {worst['benchmark']} would move the interval to "
            f"{_fmt(o, worst['adjusted_lo'], False)} to {_fmt(o, worst['adjusted_hi'])}"
        )
        tail = (
            ", still clear of zero."
            if self.verdict == "pass"
            else ": money built on it could come from a confounder left out of the graph."
        )
        return f"{text}{moved}{tail} ({self.verdict}; the linear model's bias bound)"

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "estimator": self.estimator,
            "outcome": self.outcome,
            "estimand": "att",
            "mean": self.mean,
            "lo": self.lo,
            "hi": self.hi,
            "robustness_value": self.robustness_value,
            "robustness_value_interval": self.robustness_value_interval,
            "benchmarks": [dict(b) for b in self.benchmarks],
            "verdict": self.verdict,
            "text": self.sentence,
        }


def robustness_value(f: float) -> float:
    """Cinelli and Hazlett's robustness value for the scaled effect ``f`` (>= 0).

    Examples
    --------
    >>> round(robustness_value(0.1), 4)
    0.0951
    """
    f = abs(float(f))
    return 0.5 * (math.sqrt(f**4 + 4.0 * f**2) - f**2)


def bias(r2_t: float, r2_y: float, sd_t: float, sd_y: float) -> float:
    """Largest shift of an estimate by a hidden confounder of partial R-squared ``r2_t`` with
    the treatment and ``r2_y`` with the outcome, given the residual sds of both.

    Examples
    --------
    >>> bias(0.0, 0.5, 1.0, 1.0)
    0.0
    """
    r2_t = min(max(float(r2_t), 0.0), 0.999)
    if sd_t <= 0:
        return math.inf
    return math.sqrt(max(float(r2_y), 0.0) * r2_t / (1.0 - r2_t)) * sd_y / sd_t


def money_sensitivity(data, estimates: Sequence, refutations: Sequence) -> list[Sensitivity]:
    """The sensitivity of every overall ATT of :data:`MONEY_ESTIMATORS` among ``estimates``.

    Parameters
    ----------
    data : ObservationalData
        The rows the estimates used.
    estimates : sequence of Estimate
    refutations : sequence of Refutation
        The ``unobserved_confounder`` refutations give each outcome's benchmarks (partial
        R-squared of each observed numeric confounder); without them the verdict is
        ``not checked``.
    """
    from attribution.causal.estimators import _regression_design

    wanted = [
        e
        for e in estimates
        if e.estimator in MONEY_ESTIMATORS and e.estimand == "att" and e.segment == "all"
    ]
    if not wanted:
        return []
    frame = data.frame
    X = _regression_design(frame, data)
    T = frame[TREATED].to_numpy(dtype=float)
    sd_t = _residual_sd(X, T)
    XT = np.column_stack([X, T])
    sd_y = {
        o: _residual_sd(XT, frame[outcome_column(o)].to_numpy(dtype=float))
        for o in dict.fromkeys(e.outcome for e in wanted)
    }
    refs = {r.outcome: r for r in refutations if r.refuter == "unobserved_confounder"}
    out = []
    for e in wanted:
        scale = sd_t / sd_y[e.outcome] if sd_y[e.outcome] > 0 else math.inf
        near = 0.0 if e.lo <= 0 <= e.hi else min(abs(e.lo), abs(e.hi))
        rows = []
        ref = refs.get(e.outcome)
        for b in (ref.details.get("benchmarks") if ref is not None else None) or []:
            shift = bias(b["r2_treatment"], b["r2_outcome"], sd_t, sd_y[e.outcome])
            toward = -shift if e.mean >= 0 else shift
            r2_t = min(max(float(b["r2_treatment"]), 0.0), 0.999)
            widen = math.sqrt(max(1.0 - float(b["r2_outcome"]), 0.0) / (1.0 - r2_t))
            rows.append(
                {
                    "benchmark": b["benchmark"],
                    "r2_treatment": float(b["r2_treatment"]),
                    "r2_outcome": float(b["r2_outcome"]),
                    "bias": shift,
                    "adjusted_lo": e.mean + toward - (e.mean - e.lo) * widen,
                    "adjusted_hi": e.mean + toward + (e.hi - e.mean) * widen,
                }
            )
        if rows:
            clear = all(_clearance(e.mean, b) > 0 for b in rows) and near > 0
            verdict = "pass" if clear else "warn"
        else:
            verdict = "not checked"
        out.append(
            Sensitivity(
                estimator=e.estimator,
                outcome=e.outcome,
                mean=float(e.mean),
                lo=float(e.lo),
                hi=float(e.hi),
                robustness_value=robustness_value(e.mean * scale),
                robustness_value_interval=robustness_value(near * scale),
                benchmarks=rows,
                verdict=verdict,
            )
        )
    return out


def _residual_sd(A: np.ndarray, y: np.ndarray) -> float:
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - A @ coef
    dof = max(len(y) - A.shape[1], 1)
    return float(math.sqrt(resid @ resid / dof))


def _clearance(mean: float, b: dict) -> float:
    """How far the moved interval stays from zero on the estimate's side (negative: crosses)."""
    if mean >= 0:
        return min(b["adjusted_lo"], b["adjusted_hi"])
    return -max(b["adjusted_lo"], b["adjusted_hi"])
