"""What is in the store: customers, months, interventions, retention and revenue by segment."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import duckdb
import pandas as pd

from attribution import store
from attribution.cells import cells
from attribution.periods import month_text


@dataclass(frozen=True)
class StoreSummary:
    """A description of a store's contents.

    Attributes
    ----------
    customers, months : int
        Customers in the store and months of outcomes.
    first_period, last_period : date or None
        First and last outcome month.
    interventions : pandas.DataFrame
        Per intervention: customers treated, total and unit cost, experiment ids.
    experiments : pandas.DataFrame
        Per experiment and arm: customers assigned.
    segments : pandas.DataFrame
        Per segment column and value: customers, retention at the last month (share active),
        revenue and cost-to-serve per customer per month.
    """

    customers: int
    months: int
    first_period: date | None
    last_period: date | None
    interventions: pd.DataFrame
    experiments: pd.DataFrame
    segments: pd.DataFrame

    def to_dict(self) -> dict:
        """Plain JSON-ready dictionary."""
        return {
            "customers": self.customers,
            "months": self.months,
            "first_period": month_text(self.first_period),
            "last_period": month_text(self.last_period),
            "interventions": _records(self.interventions),
            "experiments": _records(self.experiments),
            "segments": _records(self.segments),
        }

    def describe(self) -> str:
        """The summary as plain text for a terminal."""
        lines = [
            f"customers: {self.customers:,}",
            f"months:    {self.months} ({month_text(self.first_period)} to "
            f"{month_text(self.last_period)})",
            "",
            "interventions:",
        ]
        lines += _table(self.interventions) if len(self.interventions) else ["  (none)"]
        lines += ["", "experiments:"]
        lines += _table(self.experiments) if len(self.experiments) else ["  (none)"]
        lines += [
            "",
            "retention (active in the last month) and monthly revenue per customer by segment:",
        ]
        lines += _table(self.segments) if len(self.segments) else ["  (no outcomes)"]
        return "\n".join(lines)


def summarize(con: duckdb.DuckDBPyConnection, by: Sequence[str] = ("tier",)) -> StoreSummary:
    """Summarize the store's contents.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        An open store.
    by : sequence of str
        Segment columns to break retention and revenue down by (each on its own).

    Returns
    -------
    StoreSummary

    Examples
    --------
    >>> from attribution import store
    >>> summarize(store.connect(":memory:")).customers
    0
    """
    n_customers = con.execute("SELECT count(*) FROM customers").fetchone()[0]
    first, last = store.periods(con)
    months = con.execute("SELECT count(DISTINCT period) FROM outcomes").fetchone()[0]
    interventions = con.execute(
        """
        SELECT intervention,
               count(DISTINCT customer_id)                   AS customers,
               round(sum(unit_cost), 2)                      AS total_cost,
               round(avg(unit_cost), 2)                      AS unit_cost,
               coalesce(string_agg(DISTINCT experiment_id, ','), '(observational)') AS experiment
        FROM interventions GROUP BY intervention ORDER BY intervention
        """
    ).df()
    experiments = con.execute(
        """
        SELECT e.experiment_id, e.intervention, strftime(e.started, '%Y-%m') AS started,
               a.arm, count(a.customer_id) AS customers
        FROM experiments e LEFT JOIN assignments a USING (experiment_id)
        GROUP BY ALL ORDER BY e.experiment_id, a.arm
        """
    ).df()
    frames = []
    if last is not None:
        for col in by:
            c = cells(con, [col], missing="inactive")
            frames.append(
                pd.DataFrame(
                    {
                        "segment_by": col,
                        "segment": c[col].astype(str),
                        "customers": c["n"],
                        "retention": (c["n_active"] / c["n"]).round(3),
                        "revenue_per_month": (c["revenue_sum"] / c["n"] / months).round(2),
                        "cost_per_month": (c["cost_to_serve_sum"] / c["n"] / months).round(2),
                    }
                )
            )
    segments = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return StoreSummary(
        customers=int(n_customers),
        months=int(months),
        first_period=first,
        last_period=last,
        interventions=interventions,
        experiments=experiments,
        segments=segments,
    )


def _records(frame: pd.DataFrame) -> list[dict]:
    return [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def _table(frame: pd.DataFrame) -> list[str]:
    return ["  " + line for line in frame.to_string(index=False).splitlines()]
