"""The finance report's page: HTML with inline CSS and embedded PNG plots, no script, no network.

:func:`render` turns :class:`attribution.report.ReportData` into one self-contained page. Every
string that comes from data (intervention, experiment, arm and segment names, design fields,
file names) goes through :func:`html.escape`; plot labels are escaped for matplotlib's mathtext.
A Content-Security-Policy forbids scripts and any fetch but the page's own ``data:`` images.
"""

from __future__ import annotations

import base64
import html
import io
from datetime import date, datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from attribution.formatting import (
    DRIVERS,
    RANDOMIZED_METHOD,
    fmt_money,
    fmt_payback,
    fmt_pct,
    fmt_pp,
    fmt_prob,
    headline_sentence,
    missing_money,
)
from attribution.srm import SRM_ALARM_P
from attribution.value import MONEY_OUTCOMES, assumption

if TYPE_CHECKING:  # the page renders what attribution.report gathered; it never imports it
    from attribution.report import ReportData

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1180px; color: #1d2330; line-height: 1.45; padding: 0 1rem; }
h1 { font-size: 1.7rem; margin-bottom: .2rem; }
h2 { font-size: 1.3rem; margin-top: 2.2rem; border-bottom: 2px solid #d8dee9;
     padding-bottom: .2rem; }
h3 { font-size: 1.05rem; margin-top: 1.4rem; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .9rem; }
th, td { border: 1px solid #d8dee9; padding: .3rem .55rem; text-align: right; vertical-align: top; }
th { background: #eef2f7; }
td.text, th.text { text-align: left; }
.meta { color: #5a6475; font-size: .9rem; }
.note { background: #fff6dd; border-left: 4px solid #e0a800; padding: .5rem .8rem;
        margin: .6rem 0; }
.weak { background: #fdecea; border-left: 4px solid #c0392b; padding: .5rem .8rem; }
.ok { color: #1e7b34; font-weight: 600; }
.bad { color: #b02a1e; font-weight: 600; }
.warn { color: #9a6700; font-weight: 600; }
.interval { color: #5a6475; white-space: nowrap; }
.sentence { margin: .3rem 0; }
img { max-width: 100%; display: block; margin: .4rem 0 1rem; }
figcaption { color: #5a6475; font-size: .85rem; margin-bottom: 1rem; }
"""


def render(data: ReportData) -> str:
    """The whole page as one HTML string.

    Parameters
    ----------
    data : ReportData
        From :func:`attribution.report.gather`.

    Returns
    -------
    str
        A complete HTML document with no script and no external reference.
    """
    run = data.run
    width = f"{data.interval_width:.0%}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        f"<title>CX value report, run {_e(run['run_id'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<header><h1>What the customer-experience work returned</h1>",
        f'<p class="meta">Run <span id="run-id">{_e(run["run_id"])}</span>, published '
        f"{_e(_when(run['finished']))}. Every number carries a {width} credible interval; money "
        "is per treated customer unless marked total.</p></header>",
    ]
    parts += [f'<p class="note">{_e(n)}</p>' for n in data.notes]
    parts += _headline(data, width)
    parts += _drivers(data, width)
    parts += _segments(data, width)
    parts += _roi(data, width)
    parts += _design(data)
    parts += _freshness(data)
    parts += _methods(data, width)
    parts += _observational(data, width)
    parts += _targeting(data, width)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# --- sections ------------------------------------------------------------------------------------


def _headline(data: ReportData, width: str) -> list[str]:
    head = data.headline[data.headline["method"] == RANDOMIZED_METHOD]
    out = [
        '<section id="headline"><h2>1. Net value, ROI and payback per intervention</h2>',
        "<p>From randomized tests: treated customers against a control group. Net value is the "
        "extra margin from retention and spend plus cost-to-serve saved, minus what the "
        f"intervention cost, per treated customer; the {width} interval holds the true value with "
        f"{width} probability under the model.</p>",
    ]
    if head.empty:
        missing = missing_money(data.estimates)
        if missing:
            out.append(f'<p class="note" id="no-money">{_e(missing)}</p>')
        else:
            out.append("<p>No randomized estimates are published in this run.</p>")
        if len(data.observational):
            out.append(_weak_pointer(data))
        out.append("</section>")
        return out
    running = data.running_ids
    done = head[~head["experiment_id"].isin(running)]
    live = head[head["experiment_id"].isin(running)]
    if len(done):
        out += _headline_table(done, width)
        out += [f'<p class="sentence">{_e(headline_sentence(r))}</p>' for _, r in done.iterrows()]
    if len(live):
        out += _running(data, live, width)
    for experiment_id in dict.fromkeys(head["experiment_id"]):
        for outcome in data.assumed.get(experiment_id, []):
            out.append(
                f'<p class="note assumed">{_e(experiment_id)}: {_e(_words(outcome))} is not '
                f"measured in this store: {_e(assumption(outcome))}.</p>"
            )
    if len(data.observational):
        out.append(_weak_pointer(data))
    out.append("</section>")
    return out


def _headline_table(head: pd.DataFrame, width: str) -> list[str]:
    out = [
        "<table><tr>",
        '<th class="text">Intervention</th><th class="text">Experiment / arm</th>',
        "<th>Treated / control</th>",
        f"<th>Net value per treated customer ({width} interval)</th>",
        "<th>P(net value &gt; 0)</th>",
        f"<th>Total net value ({width} interval)</th>",
        f"<th>ROI ({width} interval)</th>",
        "<th>Payback month of the mean cash flow (interval; P(pays back))</th></tr>",
    ]
    for _, r in head.iterrows():
        out.append(
            "<tr>"
            f'<td class="text">{_e(r["intervention"])}</td>'
            f'<td class="text">{_e(r["experiment_id"])} / {_e(r["arm"])}</td>'
            f"<td>{_count(r['n_treated'])} / {_count(r['n_control'])}</td>"
            f"<td>{_est(fmt_money, r['net_value'], r['net_value_lo'], r['net_value_hi'])}</td>"
            f"<td>{_verdict_prob(r['p_positive'])}</td>"
            f"<td>{_est(_money0, *_triple(r, 'total_net_value'))}</td>"
            f"<td>{_est(fmt_pct, *_triple(r, 'roi'))}</td>"
            f"<td>{_payback(r)}</td></tr>"
        )
    out.append("</table>")
    return out


def _running(data: ReportData, live: pd.DataFrame, width: str) -> list[str]:
    """Monitored tests still running: interim numbers at the latest planned look, apart."""
    out = [
        '<h3 id="running">Running tests: interim numbers, not a decision</h3>',
        "<p>These tests are monitored: they are decided only at planned looks, with thresholds "
        "that keep the chance of a false roll-out over all looks at the planned level. Until a "
        "boundary is crossed the verdict is <b>continue</b>; do not act on these numbers.</p>",
    ]
    for experiment_id in dict.fromkeys(live["experiment_id"]):
        m = data.monitoring.get(experiment_id) or {}
        out.append(
            f'<p class="running"><b>{_e(experiment_id)}: {_e(m.get("verdict", "continue"))}.'
            f"</b> {_e(m.get('sentence', ''))}</p>"
        )
    out += _headline_table(live, width)
    return out


def _weak_pointer(data: ReportData) -> str:
    return (
        f'<p class="weak">{len(data.observational)} estimate rows come from methods other than '
        "a randomized test; they are shown apart, as weaker evidence, in section 8.</p>"
    )


def _drivers(data: ReportData, width: str) -> list[str]:
    d = data.drivers[data.drivers["method"] == RANDOMIZED_METHOD]
    out = [
        '<section id="drivers"><h2>2. What drove it: retention, spend, cost-to-serve</h2>',
        "<p>The effects of each intervention on the three outcomes (treated minus control), and "
        "what each is worth per treated customer. Retention is the change in the share of "
        "customers still active at the end of the readout window; spend and cost-to-serve are "
        "per customer over the window.</p>",
    ]
    if d.empty:
        return [*out, "<p>No randomized estimates are published.</p></section>"]
    missing = missing_money(data.estimates)
    if missing:
        out.append(f'<p class="note">{_e(missing)}</p>')
    money = data.config_matches and missing is None
    out += [
        '<table><tr><th class="text">Intervention</th>',
        f"<th>Retention effect ({width})</th><th>Spend effect ({width})</th>",
        f"<th>Cost-to-serve effect ({width})</th>",
    ]
    if money:
        out += [
            "<th>Value after the window (mean)</th>",
            f"<th>Spend margin ({width})</th>",
            f"<th>Cost saved ({width})</th>",
            "<th>Intervention cost</th><th>Net value (mean)</th>",
        ]
    out.append("</tr>")
    for _, r in d.iterrows():
        unmeasured = data.assumed.get(r["experiment_id"], [])

        def effect(outcome: str, r=r, unmeasured=unmeasured) -> str:
            if outcome in unmeasured:
                return "not measured (assumed unchanged)"
            return _est(fmt_money, *_triple(r, outcome))

        cells = [
            f'<td class="text">{_e(r["intervention"])} ({_e(r["arm"])})</td>',
            f"<td>{_est(fmt_pp, *_triple(r, 'retention'))}</td>",
            f"<td>{effect('revenue')}</td>",
            f"<td>{effect('cost_to_serve')}</td>",
        ]
        if money:
            cells += [
                f"<td>{_e(fmt_money(r['retained_margin']))}</td>",
                f"<td>{_est(fmt_money, *_triple(r, 'spend_margin'))}</td>",
                f"<td>{_est(fmt_money, *_triple(r, 'cost_saved'))}</td>",
                f"<td>{_e(fmt_money(-r['unit_cost']))}</td>",
                f"<td>{_e(fmt_money(r['net_value']))}</td>",
            ]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    if money:
        m = data.config.money
        out.append(
            f"<p>Spend margin is the spend effect times the {fmt_pct(m.margin_rate)} gross margin; "
            "cost saved is the fall in cost-to-serve; the intervention cost is per customer "
            "assigned to the treated arm (all three over the readout window, undiscounted). "
            "Value after the window is what the arms' retained customers bring over the next "
            f"{m.value_horizon_months} months, net of their cost-to-serve, with every month "
            f"discounted at {fmt_pct(m.discount_rate)} a year from the start; the store "
            "publishes only its mean, so it has no interval here. The means add up to the net "
            "value.</p>"
        )
        for _, r in d.iterrows():
            if np.isfinite(r["retained_margin"]):
                out.append(_figure(_drivers_plot(r), _drivers_caption(r)))
    elif missing is None:
        out.append(
            '<p class="note">The money breakdown is left out: the settings given to the report '
            "are not the ones the run used, so its margin rate is not known here.</p>"
        )
    out.append("</section>")
    return out


def _drivers_caption(r: pd.Series) -> str:
    return (
        f"What makes up the mean net value per treated customer of {r['intervention']} "
        f"({r['arm']}): bars to the right add value, bars to the left take it away."
    )


def _segments(data: ReportData, width: str) -> list[str]:
    est = data.randomized
    out = [
        '<section id="segments"><h2>3. Where it worked: effects by segment</h2>',
        f"<p>Each dot is a segment's mean and each line its {width} interval; the dashed line is "
        "no effect. Segment effects are partly pooled towards the overall effect, so small "
        "segments borrow strength from the rest.</p>",
    ]
    groups = _segment_groups(est)
    if not groups:
        return [*out, "<p>No segment breakdown is published in this run.</p></section>"]
    for (experiment_id, intervention, arm, seg_by), rows in groups:
        out.append(f"<h3>{_e(intervention)} ({_e(arm)}, {_e(experiment_id)}) by {_e(seg_by)}</h3>")
        out.append(
            _figure(
                _forest_plot(rows, width),
                f"Forest plot of {intervention} ({arm}) by {seg_by}: net value per treated "
                f"customer, and the effects on retention, spend and cost-to-serve, with {width} "
                "intervals.",
            )
        )
        out += _segment_table(rows, width)
    out.append("</section>")
    return out


def _segment_groups(est: pd.DataFrame) -> list:
    frame = est.copy()
    frame["arm"] = frame["arm"].fillna("(none)")
    frame["experiment_id"] = frame["experiment_id"].fillna("(none)")
    overall = frame[frame["segment"] == "all"]
    groups = []
    parts = frame[frame["segment"] != "all"]
    keys = ["experiment_id", "intervention", "arm", "segment_by"]
    for key, rows in parts.groupby(keys, sort=True):
        ov = overall[
            (overall["experiment_id"] == key[0])
            & (overall["intervention"] == key[1])
            & (overall["arm"] == key[2])
        ]
        groups.append((key, pd.concat([rows, ov], ignore_index=True)))
    return groups


def _segment_table(rows: pd.DataFrame, width: str) -> list[str]:
    out = [
        '<table><tr><th class="text">Segment</th><th>Treated / control</th>',
        f"<th>Net value per treated customer ({width})</th><th>P(net value &gt; 0)</th>",
        f"<th>ROI ({width})</th><th>Retention effect ({width})</th></tr>",
    ]
    for segment in _segment_order(rows):
        seg = rows[rows["segment"] == segment]
        net = _pick(seg, "net_value", "absolute")
        roi = _pick(seg, "roi", "relative")
        ret = _pick(seg, "retention", "absolute")
        first = seg.iloc[0]
        out.append(
            "<tr>"
            f'<td class="text">{_e(_segment_label(segment))}</td>'
            f"<td>{_count(first['n_treated'])} / {_count(first['n_control'])}</td>"
            f"<td>{_est(fmt_money, *_row_triple(net))}</td>"
            f"<td>{_e(fmt_prob(net['p_positive'] if net is not None else None))}</td>"
            f"<td>{_est(fmt_pct, *_row_triple(roi))}</td>"
            f"<td>{_est(fmt_pp, *_row_triple(ret))}</td></tr>"
        )
    out.append("</table>")
    return out


def _roi(data: ReportData, width: str) -> list[str]:
    est = data.randomized
    roi = est[est["outcome"] == "roi"]
    out = [
        '<section id="roi"><h2>4. Return on investment</h2>',
        "<p>ROI is net value divided by the intervention's cost: 0% breaks even, -100% loses the "
        "whole cost. The store publishes summaries of the ROI distribution, not its draws, so "
        f"this plot shows each ROI's mean (dot) and its {width} interval (line), not the full "
        "distribution.</p>",
    ]
    if roi.empty:
        missing = missing_money(data.estimates)
        if missing:
            return [*out, f'<p class="note">{_e(missing)}</p></section>']
        return [
            *out,
            "<p>No ROI is published: no intervention cost was recorded for any treated arm, so "
            "ROI is undefined.</p></section>",
        ]
    frame = roi.copy()
    frame["arm"] = frame["arm"].fillna("(none)")
    frame["experiment_id"] = frame["experiment_id"].fillna("(none)")
    for (experiment_id, intervention, arm), rows in frame.groupby(
        ["experiment_id", "intervention", "arm"], sort=True
    ):
        out.append(f"<h3>{_e(intervention)} ({_e(arm)}, {_e(experiment_id)})</h3>")
        out.append(
            _figure(
                _roi_plot(rows, width),
                f"ROI of {intervention} ({arm}) overall and by segment: mean and {width} "
                "interval from the published summaries.",
            )
        )
    out.append("</section>")
    return out


def _design(data: ReportData) -> list[str]:
    out = [
        '<section id="design"><h2>5. The tests behind the numbers: design and sample sizes</h2>',
        "<p>How each test was set up, how many customers each arm holds, and the "
        "sample-ratio-mismatch check: a chi-square test of the arm counts against the designed "
        f"shares, which stops a readout when p &lt; {SRM_ALARM_P:g} (broken assignment or "
        "logging).</p>",
    ]
    if data.experiments.empty:
        return [*out, "<p>No experiments are behind these estimates.</p></section>"]
    out.append(
        '<table><tr><th class="text">Experiment</th><th class="text">Intervention</th>'
        '<th class="text">Window</th><th class="text">Design</th>'
        '<th class="text">Customers per arm</th><th class="text">Sample ratio check</th></tr>'
    )
    for _, r in data.experiments.iterrows():
        design = r["design"] or {}
        fields = []
        for key in ("population", "unit", "randomization", "stratify_by", "unit_cost"):
            if key in design:
                fields.append(f"{_e(key)}: {_e(_plain(design[key]))}")
        if isinstance(design.get("allocation"), dict):
            alloc = ", ".join(f"{a} {_plain(s)}" for a, s in design["allocation"].items())
            fields.append(f"allocation: {_e(alloc)}")
        cluster = design.get("cluster")
        if isinstance(cluster, dict) and cluster.get("column"):
            per_arm = ", ".join(
                f"{a} {_plain(n)}" for a, n in (cluster.get("counts") or {}).items()
            )
            fields.append(
                f"randomized by {_e(cluster['column'])}: {_e(_plain(cluster.get('clusters')))} "
                f"clusters ({_e(per_arm)}), read out with a {_e(cluster['column'])} level in "
                "every model; the sample-ratio check counts clusters"
            )
        churn = design.get("churn_effect_after_window", "ends")
        fields.append(
            "net value after the window: "
            + (
                "the effect on churn is held (it goes on, or its gap outlasts the window)"
                if churn == "held"
                else "the effect on churn ends with the window"
            )
        )
        if design.get("simulated"):
            fields.append("<strong>simulated data</strong>")
        watch = design.get("monitoring")
        if isinstance(watch, dict) and watch.get("look_months"):
            marks = ", ".join(
                f"month {m} (P &ge; {t:.3f})"
                for m, t in zip(watch["look_months"], watch.get("thresholds") or [], strict=False)
            )
            status = (data.monitoring.get(r["experiment_id"]) or {}).get("verdict")
            fields.append(
                f"monitored: {len(watch['look_months'])} planned looks over "
                f"{_e(watch.get('horizon_months'))} months, {_e(watch.get('spending'))} "
                f"spending; roll out at {marks}"
                + (f"; now: <strong>{_e(status)}</strong>" if status else "")
            )
        arms = ", ".join(f"{a} {n:,}" for a, n in (r["arms"] or {}).items()) or "none"
        out.append(
            "<tr>"
            f'<td class="text">{_e(r["experiment_id"])}</td>'
            f'<td class="text">{_e(r["intervention"])}</td>'
            f'<td class="text">{_e(_day(r["started"]))} to {_e(_day(r["ended"]))}</td>'
            f'<td class="text">{"<br>".join(fields) or "no design record"}</td>'
            f'<td class="text">{_e(arms)}</td>'
            f'<td class="text">{_srm_text(r["srm"], r["srm_source"])}</td></tr>'
        )
    out.append("</table>")
    for experiment_id, notes in data.readout_notes.items():
        if notes:
            out.append(
                f'<p class="meta">What the readout of {_e(experiment_id)} skipped or '
                "assumed:</p><ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>"
            )
    out.append("</section>")
    return out


def _words(outcome: str) -> str:
    return outcome.replace("_", " ").capitalize()


def _srm_text(srm: dict | None, source: str) -> str:
    if not srm or not srm.get("checked"):
        why = srm.get("error") if srm else None
        return _e("not checked: " + (why or "the design record has no allocation to check against"))
    p = srm.get("p_value")
    verdict = (
        '<span class="bad">mismatch</span>' if srm.get("alarm") else '<span class="ok">ok</span>'
    )
    return f"{verdict}, p = {_e(_p(p))} ({_e(source)})"


def _freshness(data: ReportData) -> list[str]:
    f = data.freshness
    run = data.run
    out = [
        '<section id="freshness"><h2>6. Data freshness and diagnostics</h2>',
        "<table>",
        f'<tr><th class="text">Outcome months in the store</th><td class="text">'
        f"{_e(_month(f['first_period']))} to {_e(_month(f['last_period']))}</td></tr>",
        f'<tr><th class="text">Run started / finished</th><td class="text">'
        f"{_e(_when(run['started']))} / {_e(_when(run['finished']))}</td></tr>",
        f'<tr><th class="text">Data fingerprint of the run</th><td class="text">'
        f"{_e(run['data_hash'])} "
        + (
            '<span class="bad">(the data changed since)</span>'
            if f["data_changed"]
            else '<span class="ok">(matches the store now)</span>'
        )
        + "</td></tr>",
        f'<tr><th class="text">Configuration of the run</th><td class="text">'
        f"{_e(run['config_hash'])}</td></tr>",
        "</table>",
    ]
    loads = f["loads"]
    if loads.empty:
        out.append(
            "<p>No file loads are recorded in the store (data written by the simulator or "
            "directly).</p>"
        )
    else:
        out.append(
            '<h3>Latest load per table</h3><table><tr><th class="text">Table</th>'
            '<th class="text">Last loaded</th><th class="text">File</th><th>Rows in file</th>'
            "<th>Loads</th></tr>"
        )
        for _, r in loads.iterrows():
            out.append(
                f'<tr><td class="text">{_e(r["table_name"])}</td>'
                f'<td class="text">{_e(_when(r["last_loaded"]))}</td>'
                f'<td class="text">{_e(r["last_file"])}</td>'
                f"<td>{_count(r['rows_in_last_file'])}</td><td>{_count(r['loads'])}</td></tr>"
            )
        out.append("</table>")
    gate = data.config.gate
    out.append(
        f"<h3>Diagnostics</h3><p>Run status: <strong>{_e(run['status'])}</strong>. A run is "
        "published only when every model passed the diagnostics gate (R-hat at most "
        f"{gate.max_rhat:g}, bulk and tail effective sample size at least "
        f"{gate.min_ess_bulk:g} and {gate.min_ess_tail:g}, at most {gate.max_divergences} "
        "divergent transitions) on the quantities it publishes.</p>"
    )
    diag = data.diagnostics
    if diag.empty:
        out.append("<p>The run recorded no per-model diagnostics.</p>")
    else:
        out.append(
            '<table><tr><th class="text">Experiment</th><th class="text">Model</th>'
            "<th>Max R-hat</th><th>Min bulk ESS</th><th>Min tail ESS</th><th>Divergences</th>"
            '<th class="text">Gate</th></tr>'
        )
        for _, r in diag.iterrows():
            passed = r["passed"]
            if passed is None or pd.isna(passed):
                verdict = "not recorded"
            elif bool(passed):
                verdict = '<span class="ok">passed</span>'
            else:
                verdict = '<span class="bad">failed</span>'
            out.append(
                f'<tr><td class="text">{_e(r["experiment_id"])}</td>'
                f'<td class="text">{_e(r["model"])}</td>'
                f"<td>{_num(r['max_rhat'], '.3f')}</td><td>{_num(r['min_ess_bulk'], ',.0f')}</td>"
                f"<td>{_num(r['min_ess_tail'], ',.0f')}</td>"
                f"<td>{_num(r['divergences'], ',.0f')}</td>"
                f"<td class='text'>{verdict}</td></tr>"
            )
        out.append("</table>")
    out += _checks(data.checks)
    out.append("</section>")
    return out


#: How a check's verdict shows on the page.
_CHECK_VERDICT = {
    "pass": '<span class="ok">pass</span>',
    "warn": '<span class="warn">warn</span>',
    "fail": '<span class="bad">fail</span>',
}


def _checks(checks: pd.DataFrame) -> list[str]:
    """Every check of the run in one table, failures and warnings first."""
    if checks.empty:
        return ["<h3>Every check of the run</h3><p>The run recorded no list of checks (a run "
                "from before checks were recorded).</p>"]  # fmt: skip
    order = checks.assign(_rank=checks["verdict"].map({"fail": 0, "warn": 1, "pass": 2}))
    order = order.sort_values("_rank", kind="stable")
    counts = checks["verdict"].value_counts()
    head = ", ".join(f"{int(counts.get(v, 0))} {v}" for v in ("pass", "warn", "fail"))
    subjects = bool(checks["subject"].fillna("").astype(str).str.len().any())  # "On" if any
    on_head = '<th class="text">On</th>' if subjects else ""
    out = [
        f"<h3>Every check of the run</h3><p>{len(checks)} checks: {_e(head)}. A warning does "
        "not block publishing; a failure does (nothing of that experiment is published).</p>",
        '<table><tr><th class="text">Where</th><th class="text">Check</th>'
        f'{on_head}<th class="text">Verdict</th><th class="text">In words</th></tr>',
    ]
    for _, r in order.iterrows():
        on = f'<td class="text">{_e(r["subject"])}</td>' if subjects else ""
        out.append(
            f'<tr><td class="text">{_e(r["where"])}</td><td class="text">{_e(r["check"])}</td>'
            f"{on}"
            f'<td class="text">{_CHECK_VERDICT.get(r["verdict"], _e(r["verdict"]))}</td>'
            f'<td class="text">{_e(r["sentence"])}</td></tr>'
        )
    out.append("</table>")
    return out


def _methods(data: ReportData, width: str) -> list[str]:
    m = data.config.money
    kind = "equal-tailed" if data.config.interval.kind == "eti" else "highest-density"
    versions = ", ".join(f"{k} {v}" for k, v in (data.run.get("versions") or {}).items())
    settings_note = (
        ""
        if data.config_matches
        else " (these are the settings given to the report, which differ from the run's: see "
        "the note at the top)"
    )
    return [
        '<section id="methods"><h2>7. Methods and assumptions, in plain words</h2><ul>',
        "<li>Customers were assigned at random to a treated arm or a control group; the effect "
        "is the difference between the arms (intention to treat: customers assigned but never "
        "treated still count, at no cost).</li>",
        "<li>Customers who share a segment, arm and month are pooled into cells; Bayesian "
        "hierarchical models fitted on the cells give the effect on retention (a binomial model) "
        "and on spend and cost-to-serve (a model of whether a customer spends and how much). "
        "Pre-period spend is adjusted for where history exists.</li>",
        f"<li>Intervals are {width} {kind} credible intervals; P(net value &gt; 0) is the share "
        "of posterior draws in which the intervention made money.</li>",
        "<li>Retention, spend and cost-to-serve come from one joint posterior: spend and "
        "cost-to-serve are modelled separately for customers still active at the end of the "
        "window and for those who left, and combined with the retention model draw by draw, so "
        "a draw with more retained customers also has their spend and their cost.</li>",
        "<li>Money is a monthly cash-flow schedule per posterior draw, discounted at "
        f"{fmt_pct(m.discount_rate)} a year from the start month: in the readout window, the "
        f"extra margin on spend (gross margin {fmt_pct(m.margin_rate)}) minus the extra "
        "cost-to-serve, month by month as each arm spent it; then, for "
        f"{m.value_horizon_months} months after the window, each arm's retained customers "
        "keep bringing their monthly margin net of their cost-to-serve, fewer each month: at "
        "the control arm's retention rate when the intervention's effect on churn ends with the "
        "window (the default), or, when its design record says the effect is held "
        "(it goes on, or its churn gap outlasts the window), anywhere between that and each "
        "arm's own churn of the window's last three months, evenly across the posterior draws. "
        "Assumed: customers the intervention saved behave afterwards like the arm's other "
        "retained customers. Net value is the sum "
        "of the discounted flows "
        f"minus the intervention cost per customer{_e(settings_note)}.</li>",
        "<li>ROI is net value divided by the intervention cost. Payback is the first month "
        "(1 = the start month) in which the cumulative discounted cash flow covers the cost; "
        "the report shows it for the posterior-mean cash flow, the interval of the draws' "
        "payback months and P(pays back), or says it does not pay back within the window and "
        "the value horizon.</li>",
        "<li>Expected loss is the average amount lost per treated customer in the draws where "
        "the intervention loses money: the risk of rolling it out.</li>",
        "<li>Nothing here comes from the simulator's answer key; estimates are what the models "
        "published.</li>",
        f"<li>Software: {_e(versions or 'not recorded')}.</li>",
        "</ul></section>",
    ]


def _observational(data: ReportData, width: str) -> list[str]:
    obs = data.observational
    out = [
        '<section id="observational"><h2>8. Weaker evidence: estimates not from randomized '
        "tests</h2>",
        '<p class="weak">Estimates from observational data rest on assumptions about what '
        "else differs between treated and untreated customers; randomized tests do not. Read "
        "them as weaker evidence than sections 1 to 4, and only with their refutation "
        "verdicts.</p>",
    ]
    if obs.empty:
        return [*out, "<p>None are published in this run.</p></section>"]
    records = (data.run.get("diagnostics") or {}).get("observational") or {}
    questions = obs["question"] if "question" in obs else pd.Series(None, index=obs.index)
    asked = obs[questions.notna()]
    if len(asked):
        out.append(
            "<p>Each question below compares customers who received a treatment with those who "
            "did not, adjusting for the listed confounders: the naive difference (not adjusted, "
            "for comparison), DoWhy's propensity-score weighting and linear regression, and, "
            "where fitted, the Bayesian standardization on cells (g-formula), whose fits passed "
            "the same diagnostics gate as the randomized models. ATE is the effect averaged over "
            "everyone analysed, ATT over the treated. The refutation tests (placebo treatment, "
            "random common cause, data subset, sensitivity to an unobserved confounder) run on "
            "an additive linear regression of each outcome; each row carries the verdicts of its "
            "outcome (money rows: of all three, and how strong a hidden confounder would have "
            "to be to erase the route's ATTs). A warning does not stop publication: it says "
            "how far to trust the row.</p>"
        )
    for name in sorted(asked["question"].astype(str).unique()):
        rows = asked[asked["question"].astype(str) == name]
        out += _question(name, rows, records.get(name) or {}, width)
    other = obs[questions.isna()]
    if len(other):
        out += _other_observational(other, data, width)
    out.append("</section>")
    return out


def _targeting(data: ReportData, width: str) -> list[str]:
    """Who should get which intervention next, when the run fitted ``[targeting]``."""
    record = (data.run.get("diagnostics") or {}).get("targeting")
    if record is None:
        return []
    out = [
        '<section id="targeting"><h2>9. Who should get it next: targeting under a budget</h2>',
        "<p>Advice for the next round, not a published estimate: per-customer uplift of net "
        "value from each randomized test (each customer scored by a model that did not see "
        "them), a check that the ranking beats random targeting, and a policy giving each "
        "customer at most one intervention within the budget. Its worth is estimated on the "
        "tests' own customers, beside treating everyone and the best single segment rule; the "
        f"ranges are {width} intervals.</p>",
    ]
    if "error" in record:
        return [*out, f'<p class="weak">Not fitted: {_e(record["error"])}</p></section>']
    for check in record.get("checks") or []:
        out.append(f"<p>{_verdict_cell(check.get('verdict'))} {_e(check.get('sentence'))}</p>")
    budget = record.get("budget")
    out.append(
        "<p>Budget: " + ("no limit" if budget is None else _money0(budget)) + ".</p>"
        "<table><thead><tr><th>policy</th><th>customers</th><th>cost</th>"
        f"<th>total incremental net value ({width})</th><th>P(&gt; 0)</th><th>rule</th>"
        "</tr></thead><tbody>"
    )
    for p in record.get("policy") or []:
        out.append(
            f"<tr><td>{_e(p['policy'])}</td><td>{_count(p['customers'])}</td>"
            f"<td>{_money0(p['cost'])}</td>"
            f"<td>{_est(_money0, p['mean'], p['lo'], p['hi'])}</td>"
            f"<td>{_p(p['p_positive'])}</td><td>{_e(p['rule'])}</td></tr>"
        )
    out.append("</tbody></table>")
    out += [f'<p class="note">{_e(n)}</p>' for n in record.get("notes") or []]
    out.append(
        f"<p>{_count(record.get('customers_picked', 0))} customers picked; the list is written "
        "by <code>cx target ... --out FILE</code>.</p>"
    )
    out += _population(record.get("population"), width)
    out.append("</section>")
    return out


def _population(record: dict | None, width: str) -> list[str]:
    """The customers of the decision month (``[targeting] score_month``), when scored."""
    if not record:
        return []
    total = record["total"]
    out = [
        f"<h3>The customers active in {_e(record['month'])}</h3>",
        "<p>The same learners score the customers of this month (their features measured over "
        "the months before it, as the tests' customers were before their start), each only "
        "for an intervention whose test had customers like them. What the picks are worth "
        "comes from the tests: each picked customer carries the estimate of the test's "
        "customers with the same predicted value.</p>",
        "<table><thead><tr><th>intervention</th><th>customers</th><th>like the test's</th>"
        "<th>expected to gain</th><th>picked</th></tr></thead><tbody>",
    ]
    for c in record.get("coverage") or []:
        out.append(
            f"<tr><td>{_e(c['intervention'])}</td><td>{_count(c['customers'])}</td>"
            f"<td>{_count(c['in_support'])}</td><td>{_count(c['expected_to_gain'])}</td>"
            f"<td>{_count(c['picked'])}</td></tr>"
        )
    out.append("</tbody></table>")
    out.append(
        f"<p>Targeted: {_count(total['customers'])} customers, cost {_money0(total['cost'])}, "
        f"total incremental net value {_est(_money0, total['mean'], total['lo'], total['hi'])} "
        f"({width}), P(&gt; 0) {_p(total['p_positive'])}. The list is written by "
        f"<code>cx target ... --score-month {_e(record['month'])} --out FILE</code>.</p>"
    )
    out += [f'<p class="note">{_e(n)}</p>' for n in record.get("notes") or []]
    return out


_METHOD_ORDER = (
    "naive_difference",
    "backdoor.propensity_score_weighting",
    "backdoor.linear_regression",
    "backdoor.aipw_crossfit",
    "bayes_gformula_cells",
)


def _question(name: str, rows: pd.DataFrame, record: dict, width: str) -> list[str]:
    """One observational question: what it compared, its effects, money, refutations, gate."""
    first = rows.iloc[0]
    treated = record.get("treatment") or first["intervention"]
    out = [f'<h3 id="question-{_e(name)}">Question {_e(name)}: {_e(treated)}</h3>']
    facts = []
    if record:
        design = record.get("design") or (
            f"outcomes from {record.get('as_of')} over {record.get('horizon_months')} month(s)"
        )
        facts.append(
            f"Design: {_e(design)}; {_count(record.get('n_treated'))} treated and "
            f"{_count(record.get('n_untreated'))} untreated."
        )
        pops = record.get("populations") or {}
        if pops:
            facts.append(
                f"ATE over {_e(pops.get('ate'))}; ATT, and money per treated customer, over "
                f"{_e(pops.get('att'))}."
            )
        if record.get("confounders"):
            facts.append("Adjusted for: " + _e(", ".join(map(str, record["confounders"]))) + ".")
        overlap = record.get("overlap") or {}
        if overlap.get("text"):
            facts.append(_e(overlap["text"]))
        gate = record.get("gate")
        cls = "ok" if gate == "passed" else "bad" if gate == "failed" else ""
        gate_text = f'<span class="{cls}">{_e(gate)}</span>' if cls else _e(gate)
        facts.append(f"Bayesian cell route (g-formula) diagnostics gate: {gate_text}.")
        bases = [f.get("basis") for f in (record.get("gformula") or {}).values() if f.get("basis")]
        if bases:
            facts.append(_e(bases[0].split(" Customers repeat")[0]))
        facts.append(f"Refutations: {_e(record.get('verdict'))}.")
    out.append("<p>" + " ".join(facts) + "</p>")
    effects = rows[rows["method"] != "money_per_treated_customer"]
    rank = {m: i for i, m in enumerate(_METHOD_ORDER)}
    effects = effects.assign(
        _o=effects["outcome"].map({o: i for i, o in enumerate(DRIVERS)}),
        _m=effects["method"].map(rank),
        _s=effects["segment"].map(lambda x: (x != "all", str(x))),
    ).sort_values(["_o", "_s", "_m", "estimand"], kind="stable")
    out.append(
        '<table><tr><th class="text">Outcome</th><th class="text">Segment</th>'
        '<th class="text">Estimand</th><th class="text">Method</th>'
        f"<th>Estimate ({width} interval)</th><th>P(&gt; 0)</th>"
        '<th class="text">Refutation verdict</th></tr>'
    )
    for _, r in effects.iterrows():
        out.append(_obs_row(r))
    out.append("</table>")
    money = rows[rows["method"] == "money_per_treated_customer"]
    if money.empty:
        fitted = [o for o in DRIVERS if o in set(rows["outcome"])]
        reason = (
            f"this question fits only {', '.join(fitted)}, and money needs retention, revenue "
            "and cost_to_serve"
            if len(fitted) < len(DRIVERS)
            else "no route gave ATT draws for all three outcomes"
        )
        out.append(
            f'<p class="note">No net value, ROI or payback for {_e(name)}: {_e(reason)}.</p>'
        )
    else:
        out.append(
            "<p>Money per treated customer from the ATT draws of each route (weaker evidence: "
            "never part of the randomized headline).</p>"
        )
        out.append(
            '<table><tr><th class="text">From the draws of</th><th class="text">Quantity</th>'
            f'<th class="text">Segment</th><th>Estimate ({width} interval)</th>'
            '<th>P(&gt; 0)</th><th class="text">Refutation verdict</th></tr>'
        )
        order = {o: i for i, o in enumerate(MONEY_OUTCOMES)}
        money = money.assign(
            _o=money["outcome"].map(order), _s=money["segment"].map(lambda x: (x != "all", str(x)))
        ).sort_values(["estimator", "_s", "_o"], kind="stable")
        for _, r in money.iterrows():
            fmt = _formatter(r["outcome"], r["metric"])
            out.append(
                f'<tr><td class="text">{_e(_ESTIMATOR_WORDS.get(r["estimator"], r["estimator"]))}'
                f'</td><td class="text">{_e(r["outcome"])}</td>'
                f'<td class="text">{_e(_segment_label(r["segment"]))}</td>'
                f"<td>{_est(fmt, r['mean'], r['lo'], r['hi'])}</td>"
                f"<td>{_e(fmt_prob(r['p_positive']))}</td>"
                f'<td class="text">{_verdict_cell(r.get("verdict"))}</td></tr>'
            )
        out.append("</table>")
    refutations = record.get("refutations") or []
    if refutations:
        out.append('<ul class="refutations">')
        for r in refutations:
            verdict = str(r.get("verdict"))
            cls = "ok" if verdict == "pass" else "bad"
            out.append(
                f"<li>{_e(r.get('outcome'))}, {_e(str(r.get('refuter')).replace('_', ' '))}: "
                f'<span class="{cls}">{_e(verdict)}</span>. {_e(r.get("text"))}</li>'
            )
        out.append("</ul>")
    sensitivity = record.get("sensitivity") or []
    if sensitivity:
        out.append(
            "<p>How strong a hidden confounder would have to be to erase the ATTs the "
            "money is built on:</p>"
        )
        out.append('<ul class="refutations">')
        for x in sensitivity:
            verdict = str(x.get("verdict"))
            cls = "ok" if verdict == "pass" else "bad" if verdict == "warn" else ""
            out.append(f'<li><span class="{cls}">{_e(verdict)}</span>. {_e(x.get("text"))}</li>')
        out.append("</ul>")
    out += [f'<p class="meta">Note: {_e(n)}</p>' for n in record.get("notes") or []]
    return out


_ESTIMATOR_WORDS = {
    "dowhy_psw": "propensity-score weighting (ATT)",
    "bayes_gformula": "Bayesian cells, g-formula (ATT)",
    "dowhy_regression": "linear regression",
    "aipw": "doubly robust AIPW",
    "naive": "naive difference",
}


def _obs_row(r: pd.Series) -> str:
    fmt = _formatter(r["outcome"], r["metric"])
    return (
        f'<tr><td class="text">{_e(r["outcome"])}</td>'
        f'<td class="text">{_e(_segment_label(r["segment"]))}</td>'
        f'<td class="text">{_e(str(r.get("estimand") or "").upper() or "n/a")}</td>'
        f'<td class="text">{_e(r["method"])}</td>'
        f"<td>{_est(fmt, r['mean'], r['lo'], r['hi'])}</td>"
        f"<td>{_e(fmt_prob(r['p_positive']))}</td>"
        f'<td class="text">{_verdict_cell(r.get("verdict"))}</td></tr>'
    )


def _verdict_cell(verdict) -> str:
    if verdict is None or (isinstance(verdict, float) and np.isnan(verdict)):
        return "not recorded"
    text = str(verdict)
    if text.startswith("pass"):
        return f'<span class="ok">pass</span>{_e(text[4:])}'
    if text.startswith("warn"):
        return f'<span class="bad">warn</span>{_e(text[4:])}'
    return _e(text)


def _other_observational(obs: pd.DataFrame, data: ReportData, width: str) -> list[str]:
    """Non-randomized rows that belong to no question (published by other means)."""
    out = []
    refutations = (data.run.get("diagnostics") or {}).get("refutations")
    # a verdict column, where the store carries one (observational rows say refutation_pass/warn)
    refute_cols = [
        c
        for c in obs.columns
        if ("refut" in c.lower() or c in ("diagnostics", "verdict")) and obs[c].notna().any()
    ]
    out.append(
        '<table><tr><th class="text">Intervention</th><th class="text">Method</th>'
        '<th class="text">Outcome</th><th class="text">Segment</th><th class="text">Metric</th>'
        f"<th>Estimate ({width})</th><th>P(&gt; 0)</th>"
        + "".join(f'<th class="text">{_e(c)}</th>' for c in refute_cols)
        + "</tr>"
    )
    for _, r in obs.iterrows():
        fmt = _formatter(r["outcome"], r["metric"])
        out.append(
            f'<tr><td class="text">{_e(r["intervention"])} ({_e(r["arm"])})</td>'
            f'<td class="text">{_e(r["method"])}</td>'
            f'<td class="text">{_e(r["outcome"])}</td>'
            f'<td class="text">{_e(_segment_label(r["segment"]))}</td>'
            f'<td class="text">{_e(r["metric"])}</td>'
            f"<td>{_est(fmt, r['mean'], r['lo'], r['hi'])}</td>"
            f"<td>{_e(fmt_prob(r['p_positive']))}</td>"
            + "".join(f'<td class="text">{_e(_plain(r[c]))}</td>' for c in refute_cols)
            + "</tr>"
        )
    out.append("</table>")
    if refutations:
        out.append("<h3>Refutation verdicts</h3><ul>")
        items = refutations.items() if isinstance(refutations, dict) else enumerate(refutations)
        for key, verdict in items:
            out.append(f"<li>{_e(key)}: {_e(_plain(verdict))}</li>")
        out.append("</ul>")
    elif not refute_cols:
        out.append(
            '<p class="weak">No refutation verdicts were published with these estimates: treat '
            "them as unchecked.</p>"
        )
    return out


# --- plots ---------------------------------------------------------------------------------------

_FOREST = (
    ("net_value", "absolute", "Net value per treated customer", 1.0),
    ("retention", "absolute", "Retention effect (pp)", 100.0),
    ("revenue", "absolute", "Spend effect per customer", 1.0),
    ("cost_to_serve", "absolute", "Cost-to-serve effect per customer", 1.0),
)


def _forest_plot(rows: pd.DataFrame, width: str) -> Figure:
    segments = _segment_order(rows)
    y = np.arange(len(segments))[::-1]
    fig = Figure(figsize=(12, 0.45 * len(segments) + 1.3), layout="constrained")
    axes = fig.subplots(1, len(_FOREST), sharey=True)
    for ax, (outcome, metric, title, scale) in zip(axes, _FOREST, strict=True):
        for yi, segment in zip(y, segments, strict=True):
            r = _pick(rows[rows["segment"] == segment], outcome, metric)
            if r is None:
                continue
            colour = "#1d2330" if segment == "all" else "#2f6db5"
            ax.plot([r["lo"] * scale, r["hi"] * scale], [yi, yi], color=colour, lw=2)
            ax.plot(r["mean"] * scale, yi, "o", color=colour, ms=6)
        ax.axvline(0.0, color="#999999", ls="--", lw=1)
        ax.set_title(_mpl(title), fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, [_mpl(_segment_label(s)) for s in segments])
    return fig


def _roi_plot(rows: pd.DataFrame, width: str) -> Figure:
    rows = rows.assign(label=[_segment_label(s) for s in rows["segment"]])
    ordered = pd.concat([rows[rows["segment"] == "all"], rows[rows["segment"] != "all"]])
    labels = [
        _segment_label(s) if b in ("all", None) else f"{b}: {s}"
        for b, s in zip(ordered["segment_by"], ordered["segment"], strict=True)
    ]
    y = np.arange(len(ordered))[::-1]
    fig = Figure(figsize=(8, 0.4 * len(ordered) + 1.2), layout="constrained")
    ax = fig.subplots()
    for yi, (_, r) in zip(y, ordered.iterrows(), strict=True):
        colour = "#1d2330" if r["segment"] == "all" else "#2f6db5"
        ax.plot([r["lo"] * 100, r["hi"] * 100], [yi, yi], color=colour, lw=3)
        ax.plot(r["mean"] * 100, yi, "o", color=colour, ms=7)
    ax.axvline(0.0, color="#c0392b", ls="--", lw=1)
    ax.set_yticks(y, [_mpl(t) for t in labels])
    ax.set_xlabel(_mpl(f"ROI, % (mean and {width} interval; 0% = break even)"))
    ax.grid(axis="x", alpha=0.3)
    return fig


def _drivers_plot(r: pd.Series) -> Figure:
    names = ["After the window", "Spend margin", "Cost saved", "Intervention cost", "Net value"]
    values = [r["retained_margin"], r["spend_margin"], r["cost_saved"], -r["unit_cost"]]
    values.append(r["net_value"])
    fig = Figure(figsize=(8, 2.6), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(names))[::-1]
    colours = ["#2f6db5" if v >= 0 else "#c0392b" for v in values[:-1]] + ["#1d2330"]
    ax.barh(y, values, color=colours)
    ax.axvline(0.0, color="#999999", lw=1)
    ax.set_yticks(y, names)
    ax.set_xlabel("Mean per treated customer")
    ax.grid(axis="x", alpha=0.3)
    return fig


def _figure(fig: Figure, caption: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return (
        f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


# --- small helpers -------------------------------------------------------------------------------


def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _mpl(text: str) -> str:
    """Text for matplotlib: a ``$`` would start mathtext, so it is escaped."""
    return str(text).replace("$", r"\$")


def _segment_label(segment) -> str:
    return "all customers" if segment == "all" else str(segment)


def _segment_order(rows: pd.DataFrame) -> list:
    segs = sorted({s for s in rows["segment"] if s != "all"}, key=str)
    return ["all", *segs] if (rows["segment"] == "all").any() else segs


def _pick(rows: pd.DataFrame, outcome: str, metric: str) -> pd.Series | None:
    hit = rows[(rows["outcome"] == outcome) & (rows["metric"] == metric)]
    return None if hit.empty else hit.iloc[0]


def _row_triple(r: pd.Series | None) -> tuple:
    return (None, None, None) if r is None else (r["mean"], r["lo"], r["hi"])


def _triple(r: pd.Series, name: str) -> tuple:
    return r[name], r[f"{name}_lo"], r[f"{name}_hi"]


def _est(fmt, mean, lo, hi) -> str:
    text = _e(fmt(mean))
    if text == "n/a":
        return text
    return f'{text} <span class="interval">({_e(fmt(lo))} to {_e(fmt(hi))})</span>'


def _payback(r) -> str:
    """Payback cell: the month, its interval over the draws, P(pays back)."""
    if not np.isfinite(r.get("p_payback", np.nan)):
        return "n/a"
    text = _e(fmt_payback(r["payback_months"]))
    lo, hi = r["payback_months_lo"], r["payback_months_hi"]
    span = f"{_e(fmt_payback(lo))} to {_e(fmt_payback(hi))}"
    return f'{text} <span class="interval">({span})</span>; P = {_e(fmt_prob(r["p_payback"]))}'


def _money0(x) -> str:
    return fmt_money(x, 0)


def _verdict_prob(p) -> str:
    text = _e(fmt_prob(p))
    if p is None or not np.isfinite(p):
        return text
    cls = "ok" if p >= 0.9 else "bad" if p <= 0.1 else ""
    return f'<span class="{cls}">{text}</span>' if cls else text


def _formatter(outcome: str, metric: str):
    if metric == "relative" or outcome == "roi":
        return fmt_pct
    if outcome == "retention":
        return fmt_pp
    if outcome == "payback_months":
        return fmt_payback
    return fmt_money


def _count(n) -> str:
    try:
        return _e(f"{int(n):,}")
    except (TypeError, ValueError):
        return "n/a"


def _num(x, spec: str) -> str:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return "n/a"
    return _e(format(value, spec)) if np.isfinite(value) else "n/a"


def _p(p) -> str:
    try:
        value = float(p)
    except (TypeError, ValueError):
        return "n/a"
    return f"{value:.3g}"


def _plain(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _when(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "not recorded"
    if isinstance(value, datetime | pd.Timestamp):
        return f"{value:%Y-%m-%d %H:%M} UTC"
    return str(value)


def _day(value) -> str:
    if value is None or value is pd.NaT:
        return "open"
    if isinstance(value, date | datetime | pd.Timestamp):
        return f"{value:%Y-%m-%d}"
    return str(value)


def _month(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, date | datetime | pd.Timestamp):
        return f"{value:%Y-%m}"
    return str(value)
