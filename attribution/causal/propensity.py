"""Propensity overlap of treated and untreated customers: counted, reported, trimmed by default."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from attribution.causal.terms import MAX_LEVELS_AS_CATEGORY, MONEY_CONFOUNDERS, TREATED
from attribution.checks import Check
from attribution.errors import InputError
from attribution.observational import (
    ObservationalData,
)


# --------------------------------------------------------------------------------------------
# Overlap
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Overlap:
    """Propensity overlap of treated and untreated customers.

    Attributes
    ----------
    low, high : float
        The bounds.
    n, n_outside, n_treated_outside, n_untreated_outside : int
        Customers, and those with a propensity outside the bounds.
    trimmed : bool
        Whether the customers outside were left out of the estimates.
    propensity : numpy.ndarray
        Every customer's propensity (same order as the data's frame).
    unit : str
        What a row is: ``"customers"``, or ``"customer-trials"`` for pooled emulated trials.
    """

    low: float
    high: float
    n: int
    n_outside: int
    n_treated_outside: int
    n_untreated_outside: int
    trimmed: bool
    propensity: np.ndarray = field(repr=False)
    unit: str = "customers"

    @property
    def share_outside(self) -> float:
        """Share of customers outside the bounds."""
        return self.n_outside / self.n if self.n else 0.0

    @property
    def verdict(self) -> str:
        """``"pass"`` when every customer is inside the bounds, else ``"warn"``."""
        return "pass" if self.n_outside == 0 else "warn"

    def describe(self) -> str:
        """The overlap check in words."""
        if self.n_outside == 0:
            return (
                f"Overlap: pass. Every customer's propensity lies in [{self.low:g}, {self.high:g}]."
            )
        action = (
            f"they are left out of every estimate ({self.n - self.n_outside:,} {self.unit} remain)"
            if self.trimmed
            else "they are kept (trimming is off): estimates extrapolate there"
        )
        return (
            f"Overlap: warn. {self.n_outside:,} {self.unit} ({100 * self.share_outside:.1f}%; "
            f"{self.n_treated_outside:,} treated, {self.n_untreated_outside:,} untreated) have a "
            f"propensity outside [{self.low:g}, {self.high:g}]: treated and untreated customers "
            f"do not overlap there; {action}."
        )

    def as_check(self) -> Check:
        """The overlap check in the shape every check has (``warn`` when customers fall outside
        the bounds); the table holds the bounds and the counts."""
        row = {k: v for k, v in self.to_dict().items() if k not in ("verdict", "text")}
        return Check("overlap", self.verdict, self.describe(), pd.DataFrame([row]))

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "n_outside": self.n_outside,
            "share_outside": self.share_outside,
            "n_treated_outside": self.n_treated_outside,
            "n_untreated_outside": self.n_untreated_outside,
            "trimmed": self.trimmed,
            "verdict": self.verdict,
            "text": self.describe(),
        }


def overlap(
    data: ObservationalData,
    *,
    low: float = 0.01,
    high: float = 0.99,
    trim: bool = True,
    seed: int = 0,
) -> Overlap:
    """Fit the propensity model and check that treated and untreated customers overlap.

    Parameters
    ----------
    data : ObservationalData
    low, high : float
        Propensity bounds; customers outside are reported (and trimmed with ``trim``).
    trim : bool
        Record that the customers outside are to be left out.
    seed : int
        Seed of the logistic regression's solver.

    Raises
    ------
    InputError
        The overlap region is empty: no treated or no untreated customer has a propensity
        inside the bounds, so any estimate would be pure extrapolation.
    """
    X = propensity_design(data.frame, data)
    T = data.frame[TREATED].to_numpy(dtype=float)
    p = propensity_model(seed).fit(X, T).predict_proba(X)[:, 1]
    outside = (p < low) | (p > high)
    inside_t = int(((~outside) & (T == 1)).sum())
    inside_u = int(((~outside) & (T == 0)).sum())
    if inside_t == 0 or inside_u == 0:
        who = "treated" if inside_t == 0 else "untreated"
        raise InputError(
            f"{data.treatment}: no {who} customer has a propensity inside [{low:g}, {high:g}]; "
            "treated and untreated customers do not overlap on the confounders, so the effect "
            "cannot be estimated without extrapolating (change the confounders or the bounds "
            "causal.overlap_low / causal.overlap_high)"
        )
    return Overlap(
        low=low,
        high=high,
        n=len(T),
        n_outside=int(outside.sum()),
        n_treated_outside=int((outside & (T == 1)).sum()),
        n_untreated_outside=int((outside & (T == 0)).sum()),
        trimmed=trim,
        propensity=p,
        unit="customer-trials" if data.pooled else "customers",
    )


def propensity_model(seed: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=2000, random_state=seed)


def propensity_design(frame: pd.DataFrame, data: ObservationalData) -> np.ndarray:
    """Standardised propensity features: log1p money, few-valued numerics as categories."""
    parts = pd.DataFrame(index=frame.index)
    cats = []
    for c in data.confounders:
        col = frame[c]
        if c in data.numeric and col.nunique() <= MAX_LEVELS_AS_CATEGORY:
            parts[c] = _value_labels(col)
            cats.append(c)
        elif c in data.numeric:
            parts[c] = np.log1p(col.clip(lower=0)) if c in MONEY_CONFOUNDERS else col
        else:
            parts[c] = col.astype(str)
            cats.append(c)
    X = pd.get_dummies(parts, columns=cats, drop_first=True, dtype=float).to_numpy(dtype=float)
    return _standardise(X)


def _value_labels(col: pd.Series) -> pd.Categorical:
    """A few-valued numeric column as categories labelled ``f"{v:g}"`` in the order of the
    labels (as text), the levels and order the labels themselves would give ``get_dummies``:
    each distinct value is formatted once, not every row (2.7M customer-trials: the whole
    design 10.9 s -> 4.5 s)."""
    values = pd.Categorical(col.astype(float))
    labels = [f"{v:g}" for v in values.categories]
    as_text = pd.Categorical.from_codes(values.codes, categories=labels)
    return as_text.reorder_categories(sorted(labels))


def _standardise(X: np.ndarray) -> np.ndarray:
    sd = X.std(axis=0)
    keep = sd > 0
    kept = X[:, keep] if not keep.all() else X
    return (kept - kept.mean(axis=0)) / sd[keep]
