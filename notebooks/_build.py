"""Writes the notebooks from plain cell lists (outputs cleared). Run: python notebooks/_build.py"""

from __future__ import annotations

from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).resolve().parent


def md(text: str):
    return nbf.v4.new_markdown_cell(text.strip())


def code(text: str):
    return nbf.v4.new_code_cell(text.strip())


#: The last cells of every notebook: each works in a scratch folder of its own.
CLEANUP = [
    md("""
## Clean up

The store above is a scratch file in a temporary folder: close it and remove the folder (skip
this cell to keep exploring it).
"""),
    code("""
import shutil

con.close()
shutil.rmtree(workdir)
"""),
]


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
print(summarize(con, ["tier"]).describe())
"""),
    md("""
## What the store can answer, before any model runs

`check_store` (`cx check` on the command line) runs the readout's own checks for every
experiment: arms and their sizes, the outcome window, history for the pre-period adjustment,
segment columns and their numbers of values, which outcomes have data, and what money will
assume. It fits nothing.
"""),
    code("""
from attribution.check import check_store

print(check_store(con).describe())
"""),
    md("""
### Your own data

Most first data have no tier, one outcome month and no cost-to-serve. `data/example/` holds the
smallest files that read out (see "Mapping your data" in `data/README.md`); loaded into a
scratch store, the check says what a readout will skip and assume.
"""),
    code("""
import attribution
from attribution import load

example = Path(attribution.__file__).resolve().parents[1] / "data" / "example"
mine = store.connect(":memory:")
for table in ("customers", "experiments", "assignments", "outcomes", "interventions"):
    load.load(mine, table, example / f"{table}.csv")
print(check_store(mine).describe())
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

Retention (binomial) is fitted on cells; revenue and cost-to-serve (hurdles) on the same cells
split by whether the customer was still active at the horizon, and the three are combined draw by
draw into one joint posterior. Money is a monthly cash-flow schedule per draw: net value, ROI and
payback. The diagnostics gate decides whether it may be published.
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
    md("""
### One shape for every result and every check

Every result (an uplift model, the readout, a g-formula fit, an observational attribution) has
`summary()` with rows in the schema of the published estimates table, `describe()` in plain
sentences, and `plot()`, one forest drawing of those rows. Every check behind the numbers (the
sample-ratio check, the diagnostics gate, overlap, refutations, balance, guardrails) is a `Check`:
a name, a verdict (pass, warn or fail), a sentence and the table behind it.
"""),
    code("""
result.plot();
"""),
    code("""
from attribution.checks import checks_frame

checks_frame(result.checks())
"""),
    md("""
### Where the seconds went: compiled models are kept on disk

Compiling a model costs far more than fitting it. Each structure compiles once on a machine and
is kept in the compiled-model cache (`CX_MODEL_CACHE`, default `~/.cache/cx-attribution/models`):
after a kernel restart, a new notebook or tonight's scheduled refresh, the fit loads it in a
fraction of a second. `cache_` says where each fit's compiled model came from.
"""),
    code("""
import pandas as pd

from attribution import compiledcache

print("compiled models kept in", compiledcache.directory())
pd.DataFrame(
    [
        {"model": f"{outcome} by {seg}", "compiled model": m.cache_, **m.timings_}
        for (outcome, seg), m in result.models.items()
    ]
).round(2)
"""),
    md("""
## What untested work was worth: proactive outreach (observational)

Proactive outreach was never randomized: it went to customers judged at risk, so the naive
difference between reached and not-reached customers is biased. `attribute` declares a causal
graph (default confounders from the store's history), checks identification and overlap, and
puts the naive difference beside DoWhy's weighting and regression (bootstrap intervals) and the
Bayesian standardization on cells (credible intervals), with refutation verdicts in words.
These are weaker evidence than a randomized test.
"""),
    code("""
from attribution.causal import attribute
from attribution.config import config_from_dict

quick = config_from_dict({"causal": {"bootstrap": 100, "refuter_simulations": 3}})
outreach = attribute(con, "proactive_outreach", outcome="retention", config=quick)
print(outreach.describe())
"""),
    code("""
planted = con.execute(
    "SELECT estimand, effect FROM truth WHERE intervention = 'proactive_outreach' "
    "AND outcome = 'retention' AND segment_by = 'all'"
).df().set_index("estimand")["effect"]
rows = outreach.summary()
rows = rows[(rows["outcome"] == "retention") & (rows["segment"] == "all")]
rows = rows.assign(truth=rows["estimand"].map(planted))
rows["inside"] = (rows["lo"] <= rows["truth"]) & (rows["truth"] <= rows["hi"])
rows[["estimator", "estimand", "mean", "lo", "hi", "truth", "inside"]]
"""),
    md("""
### When the outreach went out month by month: emulated trials

Real programmes reach customers over several months. A customer reached in the fourth month had
to stay through the first three, so "treated at any time" credits the programme with months it
did not cause. Without `as_of`, `attribute` emulates one trial per month of first treatment
(eligible: active and not yet treated; confounders strictly from before the month; a fixed
follow-up), pools them, and resamples whole customers in the bootstrap (`doubly_robust=True` adds
the cross-fitted AIPW check; left out here to keep the notebook quick). The Bayesian cell route
fits on propensity strata x trial month x arm (a few hundred cells whatever the number of
customers), each customer-trial counting 1/design effect in its likelihood because controls
repeat across months. A world whose outreach is staggered over four months, with every trial's
effect planted:
"""),
    code("""
staggered = store.connect(":memory:")
synth.simulate(staggered, 20_000, months=18, seed=1, outreach_months=4)
# retention only, to keep the notebook quick; outcome="all" adds revenue, cost-to-serve and money
trials = attribute(staggered, "proactive_outreach", outcome="retention", config=quick, refuters=[])
print(trials.data.design)
print(trials.gformula["retention"].basis)
planted = staggered.execute(
    "SELECT outcome, estimand, effect FROM truth WHERE intervention = 'proactive_outreach' "
    "AND segment_by = 'all'"
).df().set_index(["outcome", "estimand"])["effect"]
rows = trials.summary()
rows = rows[(rows["segment"] == "all") & (rows["estimator"] != "naive")]
rows = rows.assign(truth=[planted[(o, e)] for o, e in zip(rows["outcome"], rows["estimand"])])
rows["inside"] = (rows["lo"] <= rows["truth"]) & (rows["truth"] <= rows["hi"])
rows[["estimator", "outcome", "estimand", "mean", "lo", "hi", "truth", "inside"]]
"""),
    md("""
### A condition: what a very ineffectively resolved case cost

Nothing assigns a bad resolution, so it is a condition: `attribute(con, condition=...)`
emulates a trial per month of customers' first such case. Compared with every eligible customer
(most had no case that month), the customers prone to contact you sit on the treated side, and
that proneness also brings later cases, cost and churn: the estimate overstates the harm.
Compared with customers who had another case that month (`compare_with="other_events"`), like is
compared with like. The simulator plants both (`condition_follow_up=6`); the DoWhy weighting
alone here, to keep the notebook quick:
"""),
    code("""
cases = store.connect(":memory:")
synth.simulate(cases, 10_000, months=18, seed=1, condition_follow_up=6)
# 30 bootstrap resamples to keep the notebook quick (the default is 200): rough intervals
rough = config_from_dict({"causal": {"bootstrap": 30}})
table = []
for compare_with, name in (
    ("eligible", synth.CONDITION), ("other_events", synth.CONDITION_AMONG_CASES)
):
    bad = attribute(
        cases, condition=synth.CONDITION, outcome=["retention", "cost_to_serve"], config=rough,
        refuters=[], gformula=False, horizon_months=6, compare_with=compare_with,
    )
    for outcome in ("retention", "cost_to_serve"):
        est = bad.get("dowhy_psw", outcome, "att")
        (truth,) = cases.execute(
            "SELECT effect FROM truth WHERE intervention = ? AND outcome = ? "
            "AND estimand = 'att' AND segment_by = 'all'", [name, outcome],
        ).fetchone()
        table.append((compare_with, outcome, est.mean, est.lo, est.hi, truth, est.contains(truth)))
cases.close()
pd.DataFrame(table, columns=["compare_with", "outcome", "att", "lo", "hi", "truth", "inside"])
"""),
    *CLEANUP,
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
from experiments.plan import guardrails_from_history, plan_test

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
    guardrails=guardrails_from_history(inputs),  # cx decide rolls out only if these pass too
)
print(plan.describe())
"""),
    md("""
## Sized for the decision, not for a test

`cx decide` rolls out on P(net value > 0) >= 0.90 *and* passing guardrails (cost-to-serve must
not rise more than 5%, CSAT must not fall more than 0.05 points). The plan above says how often
that happens at the MDE. Net value, the decision's own metric, is mostly the value of retained
customers carried over the value horizon: size on it directly.
"""),
    code("""
net = inputs.for_means("net_value")
by_value = plan_test(
    "net_value", 25.0, **net, control_share=0.2,
    eligible_per_week=inputs.eligible_per_week, horizon_weeks=inputs.horizon_weeks,
    guardrails=guardrails_from_history(inputs),
)
print(by_value.describe())
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
summary = write_assignment(
    con, "exp_q4_recovery", "recovery_gift", assignment, started="2025-12",
    looks=3, horizon_months=3,  # a monitored test: decided at months 1, 2 and 3 only
)
store_balance(con, "exp_q4_recovery").head(10)
"""),
    md("""
## Before any readout: sample ratio

Every readout first checks that the arms hold the shares the design promised; a mismatch
(p < 0.001) stops it, because it means the assignment or the data pipeline is broken.
"""),
    code("""
counts = assignment.counts
print(design.srm_check([counts["control"], counts["treatment"]], [0.2, 0.8]).describe())
print(design.srm_check([5000, 5400], [0.5, 0.5]).describe())
"""),
    md("""
## Watching a running test: looks planned in advance

The nightly refresh reads a running test every night. Reading P(net value > 0) >= 0.90 at every
look spends the 10% chance of a false roll-out again and again; planned looks with alpha
spending (O'Brien-Fleming type) keep it at 10% over all of them. The plan says what the looks
cost; the assignment above wrote them into the design record, and `cx decide` / `cx refresh`
say "continue" until a look's boundary is crossed.
"""),
    code("""
from datetime import date

from scipy import stats

from attribution.looks import look_state

monthly = [k / 12 for k in range(1, 13)]
naive = design.crossing_probabilities(monthly, [stats.norm.isf(0.1)] * 12, 0.0).sum()
print(f"Rolling out at P >= 0.90 at any of 12 monthly looks: {naive:.0%} false roll-outs.")
watched = plan_test(
    "retention", 0.04, **inputs.for_retention(), control_share=0.2,
    value_per_unit=600.0, unit_cost=3.0, looks=3,
)
w = watched.rule["looks"]
print(f"3 planned looks: roll out at P >= {', '.join(f'{t:.3f}' for t in w['thresholds'])}; "
      f"false roll-outs {w['p_rollout_at_zero']:.1%}, roll-outs at the MDE "
      f"{w['p_rollout_at_mde']:.0%}, {w['inflation'] - 1:.1%} more customers for the same "
      f"power, expected to end after {w['expected_fraction_at_mde']:.0%} of the horizon.")
monitoring = summary["design"]["monitoring"]
print(look_state(monitoring, date(2025, 12, 1), date(2025, 12, 1)).sentence(date(2025, 12, 1)))

fig, ax = plt.subplots(figsize=(6, 3.2))
for kind in design.SPENDING:
    b = design.boundaries([1 / 3, 2 / 3, 1.0], 0.1, kind)
    ax.plot(b.fractions, b.thresholds, "o-", label=kind)
ax.axhline(0.9, color="grey", ls="--", label="one look")
ax.set(xlabel="information fraction", ylabel="roll out at P(net value > 0) >=",
       title="thresholds of 3 planned looks")
ax.legend()
fig.tight_layout()
"""),
    md("""
## Delivered by branch: randomize whole clusters

When a branch or a team delivers the intervention, the unit of assignment is the cluster, and
customers of one branch share part of their outcomes. The store measures how much (the ICC), the
design effect inflates the sample, `assign(..., cluster=...)` randomizes whole branches, and the
readout then fits a branch level in every model (random intercepts) and checks the sample ratio
on branches. This world is simulated with 60 branches.
"""),
    code("""
branched = store.connect(":memory:")
synth.simulate(branched, 8_000, months=10, seed=5, branches=60)
by_branch = design_inputs(branched, horizon_months=3, as_of="2025-07", cluster="branch")
cl = by_branch.for_cluster("retention")
flat = design.proportions_sample_size(**by_branch.for_retention(), mde=0.04)
sized = design.cluster_sample_size(flat, **cl)
print(f"Retention ICC between branches {cl['icc']:.3f}, {cl['cluster_size']:.0f} customers a "
      f"branch (size CV {cl['cv']:.2f}): design effect {sized.design_effect:.2f}, "
      f"{flat.n_total:,} customers become {sized.n_total:,} "
      f"({sized.clusters_control} + {sized.clusters_treatment} branches).")
eligible_b = branched.execute("SELECT customer_id, branch FROM customers").df()
by = assign(eligible_b, salt="q1-branches", cluster="branch")
print(by.describe())
"""),
    *CLEANUP,
]


FINANCE = [
    md("""
# Finance review: what the CX programmes returned, and how sure we are

A finance reviewer asks: the service-recovery gift and premium support cost money, what did they
return? This notebook runs the same refresh the nightly job runs (every model must pass its
diagnostics gate before anything is published), then reads the published money: net value per
treated customer, total net value, ROI and payback, each with a 90% credible interval and
P(net value > 0). Because the data are simulated, it ends by checking the published numbers
against the effects the simulator planted.
"""),
    code("""
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from attribution import runs, store, synth
from attribution.config import Config
from attribution.refresh import refresh

workdir = Path(tempfile.mkdtemp(prefix="cx-finance-"))
con = store.connect(workdir / "cx.duckdb")
con.execute("BEGIN TRANSACTION")
synth.simulate(con, 20_000, months=12, seed=11)
con.execute("COMMIT")
cfg = Config()  # the documented defaults: segments by tier, 90% intervals, the full gate
cfg.money
"""),
    md("""
## The refresh: fit, gate, publish

One line per step, with timings, as the scheduler sees it. Estimates are published only when
every model passed R-hat, ESS and divergence checks; otherwise the previous estimates stay.
"""),
    code("""
outcome = refresh(con, cfg, log=print)
print(outcome.describe())
"""),
    md("## The run registry: what was run, on which data, with which versions"),
    code("""
record = runs.run_record(con, outcome.run_id)
print(record.describe())
runs.list_runs(con)
"""),
    md("""
## The money, per intervention

Per assigned customer unless stated: net value = the discounted monthly cash flow the
intervention adds (margin on extra spend minus extra cost-to-serve in the window, then the
retained customers' margin net of their cost-to-serve over the value horizon) minus its cost.
Payback is the month the cumulative flow covers the cost. `total_net_value` multiplies by the
customers treated. ROI is net value over cost. Read the interval and P(net value > 0), not the
mean alone; `expected_loss` is what rolling out costs on average in the worlds where it loses.
"""),
    code("""
est = runs.current_estimates(con)
money_outcomes = ["net_value", "total_net_value", "roi", "payback_months"]
money = est[est["outcome"].isin(money_outcomes)]
overall = money[money["segment"] == "all"]
table = overall.pivot_table(
    index=["experiment_id", "arm"], columns="outcome", values=["mean", "lo", "hi"]
)
table.round(2)
"""),
    code("""
overall[overall["outcome"] == "net_value"][
    ["experiment_id", "arm", "mean", "lo", "hi", "p_positive", "expected_loss", "n_treated"]
].round(3)
"""),
    md("## Net value and ROI by tier, with 90% intervals"),
    code("""
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for ax, what, label in [
    (axes[0], "net_value", "net value per treated customer"),
    (axes[1], "roi", "ROI (net value / cost)"),
]:
    rows = money[money["outcome"] == what].reset_index(drop=True)
    names = rows["experiment_id"].str.replace("exp_", "") + " / " + rows["segment"]
    y = np.arange(len(rows))
    ax.errorbar(
        rows["mean"],
        y,
        xerr=[rows["mean"] - rows["lo"], rows["hi"] - rows["mean"]],
        fmt="o",
        capsize=3,
    )
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(y, names)
    ax.set_xlabel(label)
axes[0].set_title("90% credible intervals")
fig.tight_layout()
"""),
    code("""
by_tier = money[(money["outcome"] == "net_value") & (money["segment"] != "all")]
ax = by_tier.pivot(index="segment", columns="experiment_id", values="p_positive").plot.bar(
    figsize=(7, 3), rot=0
)
ax.axhline(0.9, color="grey", ls="--", lw=1)
ax.set_ylabel("P(net value > 0)")
ax.set_ylim(0, 1);
"""),
    md("""
## Against the planted truth: the effects

The simulator knows every customer's outcome with and without each intervention, so the true
average effects are in the `truth` table. A 90% interval should hold the truth about nine times
in ten.
"""),
    code("""
keys = ["experiment_id", "arm", "outcome", "segment_by", "segment", "metric"]
truth = con.execute("SELECT * FROM truth WHERE estimand = 'ate'").df()
effects = est[est["outcome"].isin(["retention", "revenue", "cost_to_serve"])]
checked = effects.merge(truth[[*keys, "effect"]], on=keys, how="inner")
checked["inside"] = (checked["lo"] <= checked["effect"]) & (checked["effect"] <= checked["hi"])
print(f"{checked['inside'].mean():.0%} of {len(checked)} intervals hold the planted effect")
checked[["experiment_id", "outcome", "segment", "mean", "lo", "hi", "effect", "inside"]].round(4)
"""),
    code("""
fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
for ax, name in zip(axes, ["retention", "revenue", "cost_to_serve"], strict=True):
    rows = checked[checked["outcome"] == name].reset_index(drop=True)
    y = np.arange(len(rows))
    ax.errorbar(
        rows["mean"],
        y,
        xerr=[rows["mean"] - rows["lo"], rows["hi"] - rows["mean"]],
        fmt="o",
        capsize=3,
        label="estimate, 90% interval",
    )
    ax.scatter(rows["effect"], y, marker="x", color="red", zorder=3, label="planted truth")
    ax.set_yticks(y, rows["experiment_id"].str.replace("exp_", "") + " / " + rows["segment"])
    ax.set_title(name)
axes[0].legend(loc="lower left", fontsize=8)
fig.tight_layout()
"""),
    md("""
## Against the planted truth: the money

The simulator plants the money too: it runs every customer's treated and untreated path on past
the window for the value horizon (kept out of the outcomes table), values each month's flow as
margin on revenue minus cost-to-serve, discounts it from the start and subtracts the
intervention's cost. `truth` holds that net value and the payback month of the mean cash flow
(`inf`: it does not pay back within the window and value horizon). The published interval should
hold the true net value, and the published payback should agree with it.
"""),
    code("""
money_truth = truth[truth["outcome"].isin(["net_value", "payback_months"])]
published = overall[overall["outcome"].isin(["net_value", "payback_months"])]
check = published.merge(money_truth[[*keys, "effect"]], on=keys, how="inner")
check["inside"] = np.where(
    check["outcome"] == "net_value",
    (check["lo"] <= check["effect"]) & (check["effect"] <= check["hi"]),
    check["mean"].fillna(np.inf) == check["effect"],
)
check[["experiment_id", "outcome", "mean", "lo", "hi", "p_positive", "effect", "inside"]].round(3)
"""),
    md("""
The cash flow behind a net value, month by month (posterior mean and 90% band of the
cumulative discounted flow, against the intervention's cost): where it crosses the cost is the
payback month.
"""),
    code("""
from attribution.cells import monthly_totals
from attribution.value import money_draws, window_profile

gift = next(r for r in outcome.readouts if r.experiment_id == "exp_recovery_gift")
joint = gift.joints["tier"]  # retention, revenue and cost-to-serve, one joint posterior
tiers = [str(s) for s in joint.levels.coords["segment"].values]
draws = money_draws(
    joint.levels.sel(arm="control", drop=True),
    joint.levels.sel(arm="treatment", drop=True),
    unit_cost=20.0,
    window_months=gift.window_months,
    settings=cfg.money,
    weights=joint.weights,
    profile=window_profile(
        monthly_totals(con, "exp_recovery_gift", "tier", gift.start, gift.horizon),
        "control", "treatment", tiers, gift.window_months,
    ),
)
cum = draws["cumulative"].sel(segment="all")
months = np.arange(1, cum.sizes["month"] + 1)
lo, hi = cum.quantile([0.05, 0.95], dim=("chain", "draw")).values
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.fill_between(months, lo, hi, alpha=0.3, label="90% band")
ax.plot(months, cum.mean(("chain", "draw")), label="posterior mean")
ax.axhline(20.0, color="red", ls="--", label="cost per customer")
ax.axvline(gift.window_months + 0.5, color="grey", lw=0.8)
ax.set_xlabel("month from the start (window, then value horizon)")
ax.set_ylabel("cumulative discounted flow")
ax.legend();
"""),
    md("""
The months after the window are an assumption, and the design record states it
(`churn_effect_after_window`): "ends" lets both arms leave at the control arm's rate after the
window; "held" carries, draw by draw, between none and all of the churn gap of the window's last
months (each arm's own late rate, a Beta posterior of the active counts). Premium support goes
on, and the gift's forgiven grievance keeps churn lower for months, so both records say "held".
Premium support's posterior valued both ways, beside the truth the simulator planted by running
every customer on:
"""),
    code("""
from attribution.value import held_survival

premium = next(r for r in outcome.readouts if r.experiment_id == "exp_premium_support")
pj = premium.joints["tier"]
p_tiers = [str(s) for s in pj.levels.coords["segment"].values]
p_profile = window_profile(
    monthly_totals(con, "exp_premium_support", "tier", premium.start, premium.horizon),
    "control", "treatment", p_tiers, premium.window_months,
)
p_control = pj.levels.sel(arm="control", drop=True)
published_net = overall.query(
    "experiment_id == 'exp_premium_support' and outcome == 'net_value'"
).iloc[0]
ways = {}
for rule, survival in (
    ("ends", None),
    ("held", held_survival(p_profile, p_control["p_active"], premium.window_months,
                           seed=cfg.model.seed)),
):
    d = money_draws(
        p_control, pj.levels.sel(arm="treatment", drop=True),
        unit_cost=0.0, window_months=premium.window_months, settings=cfg.money,
        weights=pj.weights, profile=p_profile, survival=survival,
    )["after_horizon"].sel(segment="all")
    ways[rule] = {"after the window": float(d.mean()),
                  "lo": float(d.quantile(0.05)), "hi": float(d.quantile(0.95))}
print("premium support, planted net value per customer:",
      round(float(money_truth.query("experiment_id == 'exp_premium_support' "
                                    "and outcome == 'net_value'")["effect"].iloc[0]), 1),
      "| published:", round(float(published_net["mean"]), 1),
      [round(float(published_net["lo"]), 1), round(float(published_net["hi"]), 1)])
pd.DataFrame(ways).T.round(2)
"""),
    md("""
## What to take to the review

- Quote net value and ROI with their 90% intervals and P(net value > 0), never the mean alone.
- A programme whose interval spans zero is not proven either way: extend or redesign the test
  (`notebooks/03_design_a_test`) rather than cut or scale it on the mean.
- The published numbers come from one run in the registry: its data hash, configuration hash and
  package versions say exactly what they were computed from.
"""),
    *CLEANUP,
]


TARGETING = [
    md("""
# Who should get it: per-customer uplift and a budgeted policy

The readout says what an intervention is worth on average. Here: which customers gain from it,
whether that ranking is better than random (checked on customers the model never saw), and who
should get which intervention for a given budget, with the policy's worth in money and its
interval. The simulated world knows every customer's own planted effect, so each step is
compared with the truth at the end.
"""),
    code("""
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from attribution import store, synth
from attribution.targeting import choose, evaluate, experiment_rows, fit_uplift

workdir = Path(tempfile.mkdtemp(prefix="cx-targeting-"))
con = store.connect(workdir / "cx.duckdb")
con.execute("BEGIN TRANSACTION")
synth.simulate(con, 150_000, months=12, seed=1, individual_effects=True)
con.execute("COMMIT")
rows = experiment_rows(con, "exp_recovery_gift")
print(len(rows.frame), "customers;", rows.features)
rows.notes
"""),
    md("""
## Per-customer uplift of net value, out of fold

A doubly robust learner (EconML, gradient boosting; the design's share as the propensity), five
folds: each customer's uplift comes from a model fitted without them. Net value per customer is
the money layer applied to the customer's own outcomes, less the gift's cost.
"""),
    code("""
gift = fit_uplift(rows, "net_value", learner="dr", seed=1)
ev = evaluate(gift, seed=1)
print(ev.as_check().sentence)
ev.calibration.round(1)
"""),
    code("""
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(ev.curve["share"], ev.curve["model"], label="ranked by the model")
ax.plot(ev.curve["share"], ev.curve["random"], "--", label="random")
ax.set_xlabel("share of customers given the gift")
ax.set_ylabel("incremental net value per customer")
ax.legend();
"""),
    md("""
## Who gets what for 60,000

Premium support has a 10% holdout, so its learner is the X-learner. Each customer gets at most
one intervention; the policy's worth is estimated on held-out doubly robust scores, beside
treating everyone and the best single segment rule.
"""),
    code("""
premium = fit_uplift(experiment_rows(con, "exp_premium_support"), "net_value", learner="x", seed=1)
policy = choose([gift, premium], 60_000, seed=1)
policy.comparison.round(0)
"""),
    md("""
## Against the planted truth

The simulator wrote every customer's own net value effect (`truth_customers`): the true worth
of each policy is the sum over the customers it treats.
"""),
    code("""
truth = con.execute(
    "SELECT experiment_id, customer_id, net_value FROM truth_customers "
    "WHERE experiment_id IS NOT NULL"
).df()
treated = policy.members.merge(truth, on=["experiment_id", "customer_id"])
planted = {p: treated.loc[treated[p], "net_value"].sum() for p in policy.comparison.policy}
policy.comparison.assign(planted=policy.comparison.policy.map(planted))[
    ["policy", "customers", "mean", "lo", "hi", "planted"]
].round(0)
"""),
    md("""
## The customers you have now

The tests are over; the decision is about this month's customers. The same learners score the
customers active in the store's last month, their features measured over the months before it
as the tests' customers were before their start, each only for an intervention whose test had
customers like them (premium support was tested on gold and platinum customers only; the gift
after a badly resolved case). A picked customer carries the estimate, interval and P(> 0) of
the test's customers with the same predicted value (their decile group): that assumes they
respond alike, and the output says so.
"""),
    code("""
from attribution.targeting import population_rows, score_population

now = population_rows(con, "2025-12", [gift.data, premium.data])
decision = score_population([gift, premium], now, month="2025-12", budget=60_000)
print(decision.describe())
decision.picks.head(8).round(1)
"""),
    md("""
Only customers of the tests have a planted effect. At the tests' start month most customers in
support are the tests' own, so there the carried evidence can be checked against the truth:
"""),
    code("""
start = population_rows(con, f"{rows.start:%Y-%m}", [gift.data, premium.data])
picked = score_population([gift, premium], start, month=f"{rows.start:%Y-%m}", budget=60_000)
known = picked.picks.merge(truth, on=["experiment_id", "customer_id"])
print(f"{len(known):,} of {len(picked.picks):,} picks were in a test: carried estimate "
      f"{known.group_estimate.sum():,.0f}, planted {known.net_value.sum():,.0f}")
"""),
    *CLEANUP,
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
    print(write("02_finance_review", FINANCE))
    print(write("03_design_a_test", DESIGN))
    print(write("04_targeting", TARGETING))
