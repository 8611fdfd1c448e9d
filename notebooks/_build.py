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
