"""Writes the notebooks from plain cell lists (outputs cleared). Run: python notebooks/_build.py"""

from __future__ import annotations

from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).resolve().parent


def md(text: str):
    return nbf.v4.new_markdown_cell(text.strip())


def code(text: str):
    return nbf.v4.new_code_cell(text.strip())


QUICKSTART = [
    md("""
# cx-attribution quickstart

Simulate a customer base with known effects, look at the store, collapse an experiment into
cells, and read it out: effects on retention, spend and cost-to-serve, and what they are worth,
each with a 90% interval and P(> 0). Everything here is the real store and real PyMC sampling.
"""),
    code("""
import tempfile
from pathlib import Path

from attribution import store, synth
from attribution.cells import cells
from attribution.readout import read_out
from attribution.summary import summarize

workdir = Path(tempfile.mkdtemp(prefix="cx-quickstart-"))
con = store.connect(workdir / "cx.duckdb")
con.execute("BEGIN TRANSACTION")
synth.simulate(con, 20_000, months=12, seed=7)
con.execute("COMMIT")
"""),
    md("## What is in the store"),
    code("""
print(summarize(con, ["tier"]).to_text())
"""),
    md("""
## The planted truth

The simulator draws both potential outcomes for every customer, so each intervention's true
average effect is known exactly. Any estimate below should land on these numbers.
"""),
    code("""
truth = con.execute(
    "SELECT experiment_id, intervention, outcome, segment_by, segment, effect, n FROM truth "
    "WHERE estimand = 'ate' AND segment_by IN ('all', 'tier') ORDER BY 1, 3, 4, 5"
).df()
truth[truth["experiment_id"] == "exp_recovery_gift"]
"""),
    md("""
## Cells: customers collapsed into sufficient statistics

A few rows per experiment, whatever the number of customers. This is what the models fit on.
"""),
    code("""
cells(con, ["tier"], experiment_id="exp_recovery_gift")
"""),
    md("""
## Read out the service-recovery gift test

Retention (binomial), revenue and cost-to-serve (hurdle lognormal) are fitted on cells, then
turned into money per posterior draw. The diagnostics gate decides whether it may be published.
"""),
    code("""
result = read_out(con, "exp_recovery_gift", segments=["tier"])
print(result.describe())
"""),
    code("""
result.headline()
"""),
    md("## Did it land on the truth?"),
    code("""
est = result.summary()
effects = ["retention", "revenue", "cost_to_serve"]
est = est[(est["metric"] == "absolute") & est["outcome"].isin(effects)]
check = est.merge(
    truth[truth["experiment_id"] == "exp_recovery_gift"][["outcome", "segment", "effect"]],
    on=["outcome", "segment"],
)
check["inside"] = (check["lo"] <= check["effect"]) & (check["effect"] <= check["hi"])
check[["outcome", "segment", "mean", "lo", "hi", "effect", "inside"]]
"""),
    code("""
result.models[("retention", "tier")].plot();
"""),
]


DESIGN = [
    md("""
# Design a CX test: how many customers, how long, and what the holdout costs

Before a test, finance asks three things: how many customers, how many weeks, and what does the
holdout cost us? This notebook answers them from the store's own history, assigns customers
reproducibly, and shows the checks every readout runs first. Everything is the real store.
"""),
    code("""
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from attribution import store, synth
from experiments import design
from experiments.assign import assign, store_balance, write_assignment
from experiments.history import design_inputs
from experiments.plan import plan_test

workdir = Path(tempfile.mkdtemp(prefix="cx-design-"))
con = store.connect(workdir / "cx.duckdb")
con.execute("BEGIN TRANSACTION")
synth.simulate(con, 20_000, months=12, seed=7)
con.execute("COMMIT")
print(store.table_counts(con))
"""),
    md("""
## Inputs from history

The intervention: a service-recovery gift for gold and silver customers after a badly resolved
case. The store gives the baseline retention over a 3-month horizon, the spread of spend, how much
of it pre-period history explains (CUPED's R^2), and how many customers a week are triggered.
"""),
    code("""
inputs = design_inputs(
    con,
    eligible="tier=gold,silver",
    trigger="resolution=very_ineffective,somewhat_ineffective",
    horizon_months=3,
)
print(inputs.describe())
"""),
    md("""
## Size, time and money

Sized for +4 pp retention with the store's inputs, a 20% holdout, a retained customer worth
600 and a gift costing 3. The prior (+2 pp, sd 2 pp) gives the assurance and the holdout that
maximises the value of the information the test buys, net of what the holdout costs. This
store is small (20,000 customers), so enrolment, not the outcome horizon, sets the readout date.
"""),
    code("""
plan = plan_test(
    "retention",
    0.04,
    **inputs.for_retention(),
    control_share=0.2,
    eligible_per_week=inputs.eligible_per_week,
    horizon_weeks=inputs.horizon_weeks,
    value_per_unit=600.0,
    prior_mean=0.02,
    prior_sd=0.02,
    unit_cost=3.0,
    population=50_000,
)
print(plan.describe())
"""),
    code("""
fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
shares = plan.shares
a.plot(shares["control_share"], shares["n_total"], "o-", label="total")
a.plot(shares["control_share"], shares["n_control"], "o-", label="control")
a.set(xlabel="control share", ylabel="customers", title="size vs split")
a.legend()
curve = plan.holdout.curve
b.plot(curve["n_total"], curve["net"], label="net value")
b.plot(curve["n_total"], curve["evsi"], label="value of information")
b.plot(curve["n_total"], curve["cost"], label="cost of the test")
b.axvline(plan.holdout.n_total, color="grey", ls="--")
b.set(xscale="log", xlabel="customers in the test", title="holdout by value")
b.legend()
fig.tight_layout()
"""),
    md("""
## Heavy-tailed spend: raw, capped or log?

Capping buys power but moves the estimand; the table shows both, so the choice is honest.
"""),
    code("""
spend = con.execute(
    "SELECT sum(revenue) FROM outcomes WHERE period >= DATE '2025-10-01' GROUP BY customer_id"
).fetchnumpy()
values = next(iter(spend.values()))
design.heavy_tail_sample_sizes(values, mde=10.0)
"""),
    md("""
## Assign, reproducibly

A salted SHA-256 of each customer id decides the arm (the algorithm is in
`experiments.assign`'s docstring, so any system can reproduce it); strata get exact balance.
The design record, with the salt and a hash of the assignment, is written with the rows in one
transaction.
"""),
    code("""
eligible = con.execute(
    "SELECT customer_id, tier, region FROM customers WHERE tier IN ('gold', 'silver')"
).df()
assignment = assign(eligible, salt="q4-recovery", control_share=0.2, strata=["tier", "region"])
print(assignment.describe())
summary = write_assignment(con, "exp_q4_recovery", "recovery_gift", assignment, started="2025-12")
store_balance(con, "exp_q4_recovery").head(10)
"""),
    md("""
## Before any readout: sample ratio

Every readout first checks that the arms hold the shares the design promised; a mismatch
(p < 0.001) stops it, because it means the assignment or the data pipeline is broken.
"""),
    code("""
counts = assignment.counts
print(design.srm_check([counts["control"], counts["treatment"]], [0.2, 0.8]).text)
print(design.srm_check([5000, 5400], [0.5, 0.5]).text)
"""),
]


def write(name: str, cells: list) -> Path:
    nb = nbf.v4.new_notebook()
    nb["cells"] = cells
    nb["metadata"]["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = HERE / f"{name}.ipynb"
    nbf.write(nb, path)
    return path


if __name__ == "__main__":
    print(write("01_quickstart", QUICKSTART))
    print(write("03_design_a_test", DESIGN))
