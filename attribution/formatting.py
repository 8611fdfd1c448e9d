"""Numbers, intervals and sentences as the report words them: one place, so the HTML page,
``describe()`` texts and the tests agree.

Used by :mod:`attribution.report` (which gathers the numbers) and :mod:`attribution.report_html`
(which renders the page); it imports neither.
"""

from __future__ import annotations

import math

import pandas as pd

from attribution.value import MONEY_OUTCOMES

#: ``method`` of estimates from the Bayesian cell models of randomized tests.
RANDOMIZED_METHOD = "bayesian_cells"
#: Effect outcomes that drive the money.
DRIVERS = ("retention", "revenue", "cost_to_serve")


def fmt_money(x: float | None, decimals: int = 2) -> str:
    """Currency amount with thousands separators and an ASCII minus; ``n/a`` when missing.

    Examples
    --------
    >>> fmt_money(-1234.567)
    '-1,234.57'
    >>> fmt_money(1234567.8, 0)
    '1,234,568'
    """
    if not _finite(x):
        return "n/a"
    value = round(float(x), decimals)
    return f"{value + 0.0 if value != 0 else 0.0:,.{decimals}f}"


def fmt_pct(x: float | None, decimals: int = 0) -> str:
    """A ratio as a percentage (1.5 -> ``150%``); ``n/a`` when missing.

    Examples
    --------
    >>> fmt_pct(1.234)
    '123%'
    """
    if not _finite(x):
        return "n/a"
    return f"{float(x) * 100:,.{decimals}f}%"


def fmt_pp(x: float | None, *, signed: bool = False, unit: bool = True) -> str:
    """A difference in proportions in percentage points (0.021 -> ``2.1 pp``): one precision for
    every retention effect the package words (uplift, g-formula, the observational table, the
    report).

    Parameters
    ----------
    x : float or None
    signed : bool
        Lead with ``+`` for a positive difference (side-by-side tables).
    unit : bool
        Append ``" pp"``.

    Examples
    --------
    >>> fmt_pp(0.0213)
    '2.1 pp'
    >>> fmt_pp(0.0213, signed=True, unit=False)
    '+2.1'
    """
    if not _finite(x):
        return "n/a"
    return f"{float(x) * 100:{'+' if signed else ''}.1f}" + (" pp" if unit else "")


def fmt_prob(x: float | None) -> str:
    """A probability with two decimals (``0.97``); ``n/a`` when missing.

    Examples
    --------
    >>> fmt_prob(0.9749)
    '0.97'
    """
    if not _finite(x):
        return "n/a"
    return f"{float(x):.2f}"


def fmt_payback(x: float | None) -> str:
    """A payback month (1 = the start month); ``not within the horizon`` when missing.

    Examples
    --------
    >>> fmt_payback(6.0), fmt_payback(float("nan"))
    ('6', 'not within the horizon')
    """
    if not _finite(x):
        return "not within the horizon"
    return f"{int(round(float(x)))}"


def fmt_months(x: float | None) -> str:
    """Months with one decimal; ``n/a`` when missing (for example, never pays back).

    Examples
    --------
    >>> fmt_months(3.14159)
    '3.1'
    """
    if not _finite(x):
        return "n/a"
    return f"{float(x):.1f}"


def _finite(x) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def headline_sentence(row: pd.Series) -> str:
    """One sentence on an intervention's money, as the report words it.

    Parameters
    ----------
    row : pandas.Series
        A row of :func:`headline`.
    """
    pct = f"{row['interval_width']:.0%}" if _finite(row.get("interval_width")) else "90%"
    text = (
        f"{row['intervention']} ({row['arm']}, {row['experiment_id']}): net value per treated "
        f"customer {fmt_money(row['net_value'])} ({pct} interval {fmt_money(row['net_value_lo'])} "
        f"to {fmt_money(row['net_value_hi'])}), P(net value > 0) = {fmt_prob(row['p_positive'])}"
    )
    if _finite(row.get("roi")):
        text += (
            f"; ROI {fmt_pct(row['roi'])} ({fmt_pct(row['roi_lo'])} to {fmt_pct(row['roi_hi'])})"
        )
    if _finite(row.get("payback_months")):
        text += f"; pays back in month {fmt_payback(row['payback_months'])} of its cash flow"
    elif _finite(row.get("p_payback")):
        text += (
            "; does not pay back within the readout window and value horizon "
            f"(P(pays back) = {fmt_prob(row['p_payback'])})"
        )
    if row.get("method", RANDOMIZED_METHOD) != RANDOMIZED_METHOD:
        basis = f", from {row['estimator']} ATT draws" if row.get("estimator") else ""
        question = f"question {row['question']}, " if row.get("question") else ""
        text += (
            f"; weaker evidence, not a randomized test ({question}method {row['method']}{basis})"
        )
    return text + "."


def missing_money(estimates: pd.DataFrame) -> str | None:
    """Plain words on why randomized effects have no money next to them, or None.

    A run fitted with a subset of ``[model] outcomes`` publishes effects but no net value, ROI
    or payback (money needs all three outcomes); the report says so where the money would be.

    Examples
    --------
    >>> rows = pd.DataFrame({"method": ["bayesian_cells"], "outcome": ["retention"]})
    >>> missing_money(rows)  # doctest: +ELLIPSIS
    'No net value, ROI or payback is published: the run fitted only retention...'
    """
    est = estimates[estimates["method"] == RANDOMIZED_METHOD]
    if est.empty or est["outcome"].isin(MONEY_OUTCOMES).any():
        return None
    fitted = [o for o in DRIVERS if o in set(est["outcome"])]
    return (
        f"No net value, ROI or payback is published: the run fitted only {', '.join(fitted)} "
        "([model] outcomes), and money needs retention, revenue and cost_to_serve. The effects "
        "are below; they are not money."
    )
