"""Refutations of an estimate (placebo, random common cause, data subset, unobserved
confounder sensitivity), each with a pass/warn verdict in words.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from attribution.causal.graph import causal_graph, causal_model
from attribution.causal.terms import REFUTERS, TREATED, Quiet
from attribution.causal.terms import fmt_effect as _fmt
from attribution.checks import Check
from attribution.errors import InputError
from attribution.jsonready import json_ready
from attribution.observational import (
    ObservationalData,
)


# --------------------------------------------------------------------------------------------
# Refutations
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Refutation:
    """One refutation test of one estimate, with a verdict.

    Attributes
    ----------
    refuter : str
        A name in :data:`REFUTERS`.
    outcome : str
    estimate : float
        The estimate refuted (DoWhy regression ATE).
    new_effect : float or None
        What the refuter found (the placebo effect, the effect with a random common cause or on
        subsets, or the estimate corrected for the strongest benchmark confounder).
    verdict : str
        ``"pass"`` or ``"warn"``.
    sentence : str
        The verdict in plain words.
    details : dict
        Refuter-specific numbers (p-value, robustness value, benchmarks).
    """

    refuter: str
    outcome: str
    estimate: float
    new_effect: float | None
    verdict: str
    sentence: str
    details: dict = field(default_factory=dict)

    def describe(self) -> str:
        """The verdict in plain words."""
        return self.sentence

    def as_check(self) -> Check:
        """The refutation in the shape every check has; the table holds the estimate, what the
        refuter found and its details."""
        table = pd.DataFrame(
            [{"estimate": self.estimate, "new_effect": self.new_effect, **json_ready(self.details)}]
        )
        return Check(
            f"refutation: {self.refuter.replace('_', ' ')}",
            self.verdict,
            self.sentence,
            table,
            subject=self.outcome,
        )

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "refuter": self.refuter,
            "outcome": self.outcome,
            "estimate": self.estimate,
            "new_effect": self.new_effect,
            "verdict": self.verdict,
            "text": self.sentence,
            "details": json_ready(self.details),
        }


def refute(
    data: ObservationalData,
    outcome: str,
    *,
    half_width: float,
    refuters: Sequence[str] = REFUTERS,
    simulations: int = 10,
    subset_fraction: float = 0.8,
    seed: int = 0,
) -> list[Refutation]:
    """Run DoWhy's refuters on the linear-regression estimate of one outcome.

    Verdicts (``h`` = ``half_width``, the half-width of the estimate's interval):

    - placebo treatment (treatment permuted): pass when the placebo effect is within ``h`` of 0;
    - random common cause (a random covariate added): pass when the estimate moves by less
      than ``h / 4``;
    - data subset (``subset_fraction`` of the customers): pass when the subsets' mean estimate
      is within ``h / 2`` of the estimate;
    - unobserved confounder (DoWhy ``linear-partial-R2``): for each observed numeric confounder
      as a benchmark, the estimate corrected for an unobserved confounder as strong as it (with
      both treatment and outcome); pass when every corrected 95% interval keeps the estimate's
      sign (excludes 0). The robustness value (the partial R² with both that would bring the
      estimate to 0) is reported.

    Parameters
    ----------
    data : ObservationalData
    outcome : {"retention", "revenue", "cost_to_serve"}
    half_width : float
        Half-width of the estimate's interval (the scale of "moved a lot").
    refuters : sequence of str
        Names from :data:`REFUTERS`.
    simulations : int
        Simulations per placebo / random-common-cause / subset refuter.
    subset_fraction : float
    seed : int
    """
    unknown = [r for r in refuters if r not in REFUTERS]
    if unknown:
        raise InputError(f"unknown refuter(s) {unknown}; choose from {list(REFUTERS)}")
    graph = causal_graph(data, outcome)
    model = causal_model(data.frame, graph)
    frame = data.frame[[TREATED, graph.outcome, *data.confounders]].copy()
    with Quiet():
        estimand = model.identify_effect(proceed_when_unidentifiable=False)
        est = model.estimate_effect(estimand, method_name="backdoor.linear_regression")
    value = float(est.value)
    h = float(half_width)
    out = []
    for name in refuters:
        began = time.perf_counter()
        with Quiet():
            if name == "placebo_treatment":
                r = model.refute_estimate(
                    estimand,
                    est,
                    method_name="placebo_treatment_refuter",
                    placebo_type="permute",
                    num_simulations=simulations,
                    random_seed=seed,
                )
                new = float(r.new_effect)
                ok = abs(new) <= h
                text = (
                    f"Placebo treatment: {_verdict(ok)}. With the treatment shuffled at random the "
                    f"effect is {_fmt(outcome, new)} (the estimate is {_fmt(outcome, value)}); "
                    + (
                        "a fake treatment shows no effect beyond the estimate's own noise."
                        if ok
                        else "a fake treatment shows an effect: the model finds effects where "
                        "there are none."
                    )
                )
                details = {"p_value": _p_value(r)}
            elif name == "random_common_cause":
                r = model.refute_estimate(
                    estimand,
                    est,
                    method_name="random_common_cause",
                    num_simulations=simulations,
                    random_seed=seed,
                )
                new = float(r.new_effect)
                ok = abs(new - value) <= h / 4
                text = (
                    f"Random common cause: {_verdict(ok)}. Adding a random covariate moves the "
                    f"estimate to {_fmt(outcome, new)} from {_fmt(outcome, value)}"
                    + ("; it is stable." if ok else "; it should not move: the model is unstable.")
                )
                details = {"p_value": _p_value(r)}
            elif name == "data_subset":
                r = model.refute_estimate(
                    estimand,
                    est,
                    method_name="data_subset_refuter",
                    subset_fraction=subset_fraction,
                    num_simulations=simulations,
                    random_seed=seed,
                )
                new = float(r.new_effect)
                ok = abs(new - value) <= h / 2
                text = (
                    f"Data subset: {_verdict(ok)}. On random {subset_fraction:.0%} subsets the "
                    f"estimate averages {_fmt(outcome, new)} against {_fmt(outcome, value)} on "
                    "everyone" + ("." if ok else ": it depends on which customers are included.")
                )
                details = {"p_value": _p_value(r), "subset_fraction": subset_fraction}
            else:
                new, ok, text, details = _sensitivity(
                    model, estimand, est, data, frame, outcome, value
                )
        details["seconds"] = round(time.perf_counter() - began, 3)
        out.append(
            Refutation(
                refuter=name,
                outcome=outcome,
                estimate=value,
                new_effect=new,
                verdict="pass" if ok else "warn",
                sentence=text,
                details=details,
            )
        )
    return out


def _sensitivity(model, estimand, est, data, frame, outcome, value):
    """Cinelli-Hazlett sensitivity with DoWhy's analyzer, benchmarked on each numeric confounder.

    DoWhy's ``LinearSensitivityAnalyzer`` computes every benchmark's partial R² but keeps the
    bias-adjusted numbers of the last one only, so they are recomputed here per benchmark with
    its formulas (confounder as strong as the benchmark with both treatment and outcome).
    """
    from dowhy.causal_refuters.linear_sensitivity_analyzer import LinearSensitivityAnalyzer

    bench = [c for c in data.numeric if frame[c].std() > 0]
    analyzer = LinearSensitivityAnalyzer(
        estimator=est.estimator,
        data=frame,
        treatment_name=[TREATED],
        benchmark_common_causes=bench,
        frac_strength_treatment=[1.0],
        frac_strength_outcome=[1.0],
        common_causes_order=est.estimator._observed_common_causes.columns,
    )
    analyzer.check_sensitivity(plot=False)
    rv = float(analyzer.stats["robustness_value"])
    rows = []
    for c, r2t, r2y in zip(bench, analyzer.r2twj_w, analyzer.r2ywj_tw, strict=True):
        r2tu = r2t / (1 - r2t)
        r2uwj = r2t**2 / ((1 - r2t) * (1 - r2t))
        if r2uwj >= 1:  # a benchmark this strong with the treatment bounds nothing below 1
            r2yu = 1.0
        else:
            r2yu = min(
                1.0, ((1 + math.sqrt(r2uwj)) / math.sqrt(1 - r2uwj)) ** 2 * (r2y / (1 - r2y))
            )
        if r2tu >= 1:
            r2tu = 0.999
        b = analyzer.compute_bias_adjusted(np.array([r2tu]), np.array([r2yu]))
        rows.append(
            {
                "benchmark": c,
                "r2_treatment": float(r2tu),
                "r2_outcome": float(r2yu),
                "adjusted_estimate": float(np.ravel(b["bias_adjusted_estimate"])[0]),
                "adjusted_lo": float(np.ravel(b["bias_adjusted_lower_CI"])[0]),
                "adjusted_hi": float(np.ravel(b["bias_adjusted_upper_CI"])[0]),
            }
        )
    details: dict = {"robustness_value": rv, "benchmarks": rows}
    if not rows:
        text = (
            "Unobserved confounder: warn. No numeric confounder to benchmark against; a hidden "
            f"confounder explaining {100 * rv:.1f}% of the remaining variation of both treatment "
            "and outcome would erase the effect."
        )
        return None, False, text, details
    sign = 1.0 if value >= 0 else -1.0

    def keeps(row: dict) -> bool:
        return sign * row["adjusted_lo"] > 0 and sign * row["adjusted_hi"] > 0

    worst = min(rows, key=lambda r: sign * min(r["adjusted_lo"], r["adjusted_hi"]))
    ok = all(keeps(r) for r in rows) and value != 0
    text = (
        f"Unobserved confounder: {_verdict(ok)}. A hidden confounder would have to explain "
        f"{100 * rv:.1f}% of the remaining variation of both treatment and outcome to erase the "
        f"effect (robustness value). One as strong as the observed {worst['benchmark']} "
        f"would move the estimate to {_fmt(outcome, worst['adjusted_estimate'])} (95% interval "
        f"{_fmt(outcome, worst['adjusted_lo'], False)} to "
        f"{_fmt(outcome, worst['adjusted_hi'], False)})"
        + (
            ", still clear of zero."
            if ok
            else ": the effect would no longer be distinguishable from zero, so a confounder "
            "left out of the graph could explain it."
        )
    )
    details["worst"] = worst["benchmark"]
    return worst["adjusted_estimate"], ok, text, details


def _p_value(r) -> float | None:
    sig = getattr(r, "refutation_result", None)
    if isinstance(sig, dict) and "p_value" in sig:
        return float(sig["p_value"])
    return None


def _verdict(ok: bool) -> str:
    return "pass" if ok else "warn"
