"""Names, constants and wording shared by the observational modules: the estimators, the
refuters, outcome columns, units and number formats, and a quiet block for DoWhy's chatter.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence

from attribution.errors import InputError
from attribution.formatting import fmt_pp
from attribution.observational import (
    OUTCOME_COLUMNS,
)

ESTIMATORS = {
    "naive": "naive difference in means",
    "dowhy_psw": "DoWhy propensity-score weighting",
    "dowhy_regression": "DoWhy linear regression (check)",
    "aipw": "doubly robust AIPW, cross-fitted",
    "bayes_gformula": "Bayesian standardization on cells",
}
#: Numeric confounders holding money; the propensity model takes them as log1p.
MONEY_CONFOUNDERS = ("prior_revenue", "prior_cost", "history_revenue")
#: Numeric confounders with at most this many distinct values enter the propensity as categories,
#: so a count (months since the last purchase, cases in the lookback) can act through any of its
#: values, not only along a line: a targeting rule such as "no purchase for two months" is a step
#: in months since the last purchase, which a linear term smears over the other values (with 8,
#: that confounder entered linearly and the weighting route's revenue ATT read about a third low
#: at 250k customers; see the README's 1M section).
MAX_LEVELS_AS_CATEGORY = 24
#: ``verdict`` of the naive difference's rows: no adjustment, so no refutation applies.
NAIVE_VERDICT = "not adjusted: the raw difference between treated and untreated, for comparison"
#: Refuters run by default, in order.
REFUTERS = ("placebo_treatment", "random_common_cause", "data_subset", "unobserved_confounder")
TREATED = "treated"


def outcome_list(outcome: str | Sequence[str]) -> list[str]:
    """The outcomes asked for (``"all"``, one name or a list), checked, without repeats."""
    if isinstance(outcome, str):
        items = list(OUTCOME_COLUMNS) if outcome == "all" else [outcome]
    else:
        items = list(outcome)
    if not items:
        raise InputError("outcome: give retention, revenue, cost_to_serve or all")
    for o in items:
        outcome_column(o)
    return list(dict.fromkeys(items))


def outcome_column(outcome: str) -> str:
    """The observational frame's column of ``outcome``; an unknown outcome is an InputError."""
    if outcome not in OUTCOME_COLUMNS:
        raise InputError(f"outcome {outcome!r} is not one of {', '.join(OUTCOME_COLUMNS)} (or all)")
    return OUTCOME_COLUMNS[outcome]


def unit_words(outcome: str) -> str:
    """What an effect on ``outcome`` is measured in, in words."""
    return (
        "share active at the horizon" if outcome == "retention" else "per customer over the window"
    )


def fmt_effect(outcome: str, x: float | None, unit: bool = True) -> str:
    """An effect on ``outcome``, signed: retention in pp (:func:`attribution.formatting.fmt_pp`),
    money with two decimals; ``n/a`` when missing."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if outcome == "retention":
        return fmt_pp(x, signed=True, unit=unit)
    return f"{x:+,.2f}"


class Quiet:
    """Silence DoWhy's logging and warnings (statsmodels, pandas) inside a block."""

    def __enter__(self):
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore")
        self._level = logging.getLogger("dowhy").level
        logging.getLogger("dowhy").setLevel(logging.ERROR)
        return self

    def __exit__(self, *exc):
        logging.getLogger("dowhy").setLevel(self._level)
        self._warnings.__exit__(*exc)
        return False
