"""The ``cx`` command.

Conventions every subcommand follows:

- ``--store PATH`` (default ``$CX_STORE``, else ``data/cx.duckdb``);
- ``--json`` on every subcommand that prints results: then stdout holds only JSON;
- exit codes: 0 success, 2 bad input or usage, 1 any other failure (including another refresh
  running, or data that changed while a refresh fitted), 3 a model failed its
  diagnostics gate (nothing published; the previous estimates stay current), 4 a sample ratio
  mismatch stopped a readout before anything was fitted. Errors are one
  message on stderr, never a traceback (set ``CX_DEBUG=1`` to see one).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict

from attribution import __version__, store
from attribution.errors import CxError, InputError

EXIT_OK, EXIT_FAILURE, EXIT_INPUT, EXIT_GATE = 0, 1, 2, 3


def _store_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--store",
        metavar="PATH",
        default=None,
        help=f"store file (default: ${store.STORE_ENV} or {store.DEFAULT_STORE})",
    )
    return parent


def _json_option() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", help="print only JSON on stdout")
    return parent


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cx",
        description="cx-attribution: what customer-experience work is worth, in money.",
        epilog="Exit codes: 0 success, 2 bad input or usage, 1 other failure, 3 diagnostics "
        "gate failed, 4 sample ratio mismatch.",
    )
    parser.add_argument("--version", action="version", version=f"cx {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    s, j = _store_options(), _json_option()

    p = sub.add_parser("init", parents=[s, j], help="create an empty store with the schema")
    p.set_defaults(func=_cmd_init)

    p = sub.add_parser("load", parents=[s, j], help="validate and load a CSV or Parquet file")
    p.add_argument("table", help="customers, interactions, interventions, outcomes, ...")
    p.add_argument("file", help="a .csv or .parquet file")
    p.set_defaults(func=_cmd_load)

    p = sub.add_parser("simulate", parents=[s, j], help="write a simulated customer base")
    p.add_argument("--customers", type=int, default=20_000, metavar="N")
    p.add_argument("--months", type=int, default=12, metavar="M")
    p.add_argument("--seed", type=int, default=0, metavar="S")
    p.add_argument("--start", default="2025-01", metavar="YYYY-MM", help="first month")
    p.add_argument(
        "--branches",
        type=int,
        default=0,
        metavar="K",
        help="customers served by K branches whose outcomes correlate (a customers column "
        "`branch`, for trying tests randomized by cluster)",
    )
    p.add_argument(
        "--outreach-months",
        type=int,
        default=1,
        metavar="K",
        help="spread the targeted proactive outreach over K months (staggered treatment, for "
        "trying target-trial emulation in `cx attribute`)",
    )
    p.add_argument(
        "--hidden-confounding",
        type=float,
        default=0.0,
        metavar="S",
        help="an unrecorded trait of strength S (0-5) that drives the outreach's targeting and "
        "the outcomes: a confounder no adjustment can see",
    )
    p.add_argument(
        "--condition-follow-up",
        type=int,
        default=0,
        metavar="H",
        help="also plant the effect of a very ineffectively resolved case in the trials `cx "
        "attribute --condition resolution=very_ineffective --horizon H` emulates",
    )
    p.add_argument(
        "--individual-effects",
        action="store_true",
        help="also write every customer's own planted effect (table truth_customers; store "
        "only): the truth per-customer uplift is checked against",
    )
    p.add_argument(
        "--lake",
        default=None,
        metavar="PATH",
        help="write the world as a lake of Parquet tables (for --engine spark), not a store",
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="delete the store's data first (else it must be empty)",
    )
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser(
        "check", parents=[s, j], help="what the store can answer, before any model runs"
    )
    p.add_argument("--config", default=None, metavar="FILE", help="cx.toml settings")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("summary", parents=[s, j], help="what is in the store")
    p.add_argument(
        "--by", default="tier", metavar="COL,COL", help="segment columns (default: tier)"
    )
    p.set_defaults(func=_cmd_summary)

    p = sub.add_parser(
        "readout", parents=[s, j], help="fit one experiment: effects and money with intervals"
    )
    p.add_argument("experiment_id")
    p.add_argument(
        "--segments", default=None, metavar="COL,COL", help="segment columns ('' for overall only)"
    )
    p.add_argument(
        "--horizon",
        type=int,
        default=None,
        metavar="MONTHS",
        help="months of outcomes from the start month on (default: all observed)",
    )
    p.add_argument("--config", default=None, metavar="FILE", help="cx.toml settings")
    p.add_argument(
        "--ignore-srm",
        action="store_true",
        help="read out despite a sample ratio mismatch (the output says so)",
    )
    _engine_arguments(p)
    p.set_defaults(func=_cmd_readout)

    p = sub.add_parser(
        "decide",
        parents=[s, j],
        help="roll out, stop or extend: the readout in money with guardrails, SRM and balance",
    )
    p.add_argument("experiment_id")
    p.add_argument("--segments", default=None, metavar="COL,COL", help="segment columns")
    p.add_argument("--horizon", type=int, default=None, metavar="MONTHS")
    p.add_argument("--config", default=None, metavar="FILE", help="cx.toml settings")
    p.add_argument("--ignore-srm", action="store_true", help="decide despite an SRM alarm")
    _engine_arguments(p)
    p.set_defaults(func=_cmd_decide)

    p = sub.add_parser(
        "refresh", parents=[s, j], help="fit every experiment and publish if all pass"
    )
    p.add_argument("--config", default=None, metavar="FILE", help="cx.toml settings")
    p.add_argument(
        "--force", action="store_true", help="run even if data and configuration are unchanged"
    )
    p.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for another refresh to finish (default: exit at once)",
    )
    p.set_defaults(func=_cmd_refresh)

    _design_parser(sub, s, j)

    p = sub.add_parser(
        "assign",
        parents=[s, j],
        help="assign eligible customers to arms by salted hash and record the experiment",
    )
    p.add_argument("experiment_id")
    p.add_argument("--intervention", required=True, metavar="NAME")
    p.add_argument("--eligible", required=True, metavar="FILE", help="CSV/Parquet with customer_id")
    p.add_argument("--salt", required=True, help="any text; the same salt gives the same arms")
    p.add_argument("--control-share", type=float, default=0.5, metavar="SHARE")
    p.add_argument(
        "--arms", default=None, metavar="A,B,..", help="arm names, control first (default: 2)"
    )
    p.add_argument("--shares", default=None, metavar="S,S,..", help="share per arm, summing to 1")
    p.add_argument("--strata", default="", metavar="COL,COL", help="exact balance inside strata")
    p.add_argument("--covariates", default="", metavar="COL,COL", help="balance report columns")
    p.add_argument(
        "--cluster",
        default=None,
        metavar="COL",
        help="randomize whole clusters (branch, team, store: a column of the file or of "
        "customers); the readout models the cluster as a level",
    )
    p.add_argument(
        "--rerandomize-p",
        type=float,
        default=None,
        metavar="P",
        help="re-randomize until the Mahalanobis distance is below its chi2 P quantile "
        "(keeps the best-balanced share P of assignments, e.g. 0.1)",
    )
    p.add_argument("--started", default=None, metavar="YYYY-MM[-DD]", help="default: today")
    p.add_argument(
        "--looks",
        type=int,
        default=None,
        metavar="K",
        help="monitored test: decide only at K looks spread over --horizon-months, with "
        "alpha-spending thresholds (default: one readout at the end)",
    )
    p.add_argument(
        "--horizon-months",
        type=int,
        default=None,
        metavar="H",
        help="monitored test: its outcome horizon in months (the last look)",
    )
    _spending_argument(p)
    p.add_argument(
        "--churn-after-window",
        choices=["ends", "held"],
        default="ends",
        help="what the effect on churn does after the readout window, for net value: 'ends' "
        "(over by the window's end; default) or 'held' (it goes on, such as a support tier, or "
        "its churn gap outlasts the window)",
    )
    p.add_argument("--config", default=None, metavar="FILE", help="cx.toml: decision thresholds")
    p.set_defaults(func=_cmd_assign)

    p = sub.add_parser(
        "attribute",
        parents=[s, j],
        help="what untested CX work was worth: adjusted estimates, refutations, overlap",
    )
    t = p.add_mutually_exclusive_group(required=True)
    t.add_argument("--intervention", metavar="NAME", help="treated: had this intervention")
    t.add_argument(
        "--condition",
        metavar="FILTER",
        help='treated: matched an interactions condition, e.g. "resolution=very_effective"',
    )
    p.add_argument(
        "--outcome",
        required=True,
        metavar="OUTCOME[,OUTCOME]",
        help="retention, revenue, cost_to_serve (comma-separated for several) or all",
    )
    p.add_argument("--confounders", default=None, metavar="A,B,C", help="default: from the store")
    p.add_argument(
        "--as-of",
        default=None,
        metavar="YYYY-MM",
        help="one trial at this month (default: a trial per month of first treatments, pooled)",
    )
    p.add_argument("--horizon", type=int, default=None, metavar="MONTHS", help="follow-up months")
    p.add_argument(
        "--compare-with",
        choices=("eligible", "other-events"),
        default="eligible",
        help="a condition's treated against every eligible customer (default) or against those "
        "with another interaction that month (e.g. a case resolved another way)",
    )
    p.add_argument("--segment", default=None, metavar="COL", help="effects by this segment too")
    p.add_argument("--graph", default=None, metavar="PNG", help="write the causal graph picture")
    p.add_argument(
        "--no-gformula",
        action="store_true",
        help="skip the Bayesian cell route (minutes per outcome with many confounders)",
    )
    p.add_argument(
        "--aipw",
        action="store_true",
        help="add the doubly robust check: cross-fitted AIPW with boosted outcome models",
    )
    p.add_argument("--config", default=None, metavar="FILE", help="cx.toml settings")
    p.set_defaults(func=_cmd_attribute)

    p = sub.add_parser(
        "report",
        parents=[s, j],
        help="the finance report of the current run: one HTML file, plus CSV and Parquet",
    )
    p.add_argument("--out", default="reports", metavar="DIR", help="output folder (reports/)")
    p.add_argument("--config", default=None, metavar="FILE", help="cx.toml the run used")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser(
        "target",
        parents=[s, j],
        help="who should get which intervention: per-customer uplift and a budgeted policy",
        description="Fit per-customer net-value uplift on each randomized experiment (out of "
        "fold), check that it ranks better than random, and give each customer at most one "
        "intervention within the budget.",
    )
    p.add_argument("experiments", nargs="+", metavar="EXPERIMENT_ID")
    p.add_argument("--budget", type=float, default=None, metavar="AMOUNT",
                   help="most to spend on the interventions (default: no limit)")  # fmt: skip
    p.add_argument("--capacity", default=None, metavar="INTERVENTION=N,...",
                   help="most customers per intervention")  # fmt: skip
    p.add_argument("--learner", choices=["auto", "dr", "t", "x"], default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--score-month", default=None, metavar="YYYY-MM",
                   help="pick from the customers active in this month ('latest': the store's "
                   "last) (features from before "
                   "it), scored by the experiments' learners, instead of the experiments' own "
                   "customers")  # fmt: skip
    p.add_argument("--out", default=None, metavar="FILE",
                   help="write the policy (.csv or .parquet)")  # fmt: skip
    p.add_argument("--config", default=None, metavar="FILE", help="cx.toml (money, interval)")
    p.set_defaults(func=_cmd_target)

    p = sub.add_parser("runs", parents=[s, j], help="list model runs, newest first")
    p.set_defaults(func=_cmd_runs)
    return parser


def _design_parser(sub, s: argparse.ArgumentParser, j: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "design",
        parents=[s, j],
        help="size a test: customers per arm, weeks to readout, the MDE in money",
        description="Size a CX test. Give the baseline (retention) or sd (revenue, cost) "
        "yourself, or take them, R^2, the eligible rate and the ICC from the store "
        "with --from-store. Explicit flags win over store values.",
    )
    p.add_argument("metric", choices=["retention", "revenue", "cost_to_serve", "net_value"])
    ask = p.add_mutually_exclusive_group(required=True)
    ask.add_argument("--mde", type=float, help="effect to detect (0.02 = 2 pp)")
    ask.add_argument(
        "--customers", type=int, help="or: what can a test of this many customers detect?"
    )
    ask.add_argument(
        "--weeks", type=float, help="or: what can a test that reads out in this many weeks detect?"
    )
    p.add_argument(
        "--max-weeks",
        type=float,
        default=None,
        help="the time the test must read out in (default 52, or --weeks); longer is said plainly",
    )
    p.add_argument("--baseline", type=float, help="control retention at the horizon, e.g. 0.80")
    p.add_argument("--sd", type=float, help="per-customer sd of revenue or cost over the window")
    p.add_argument("--control-share", type=float, default=0.5, metavar="SHARE")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--power", type=float, default=0.8)
    p.add_argument("--r2", type=float, default=None, help="variance explained by history (CUPED)")
    p.add_argument("--continuity", action="store_true", help="continuity correction (retention)")
    p.add_argument("--arms", type=int, default=2, help="arms including control (default 2)")
    p.add_argument("--metrics", type=int, default=1, help="metrics read out (default 1)")
    p.add_argument("--correction", choices=["holm", "bonferroni"], default="holm")
    p.add_argument("--icc", type=float, help="intra-cluster correlation (cluster delivery)")
    p.add_argument("--cluster-size", type=float, help="mean customers per cluster")
    p.add_argument("--cluster-cv", type=float, default=None, help="cv of cluster sizes")
    p.add_argument("--eligible-per-week", type=float, help="customers becoming eligible a week")
    p.add_argument("--horizon-weeks", type=float, help="outcome horizon in weeks")
    p.add_argument(
        "--value-per-unit",
        type=float,
        help="currency one unit of effect is worth per customer (MDE in money)",
    )
    p.add_argument("--hazard-ratio", type=float, help="churn hazard ratio for a log-rank test")
    p.add_argument("--events-per-week", type=float, help="churn events a week (both arms)")
    m = p.add_argument_group("money of information")
    m.add_argument("--prior-mean", type=float, help="prior mean of the effect (mde units)")
    m.add_argument("--prior-sd", type=float, help="prior sd of the effect (mde units)")
    m.add_argument("--unit-cost", type=float, default=0.0, help="cost per treated customer")
    m.add_argument("--population", type=float, help="customers the roll-out decision applies to")
    g = p.add_argument_group("inputs from the store")
    g.add_argument("--from-store", action="store_true", help="estimate inputs from history")
    g.add_argument(
        "--eligible", default=None, metavar="FILTER", help='customers filter: "tier=gold,silver"'
    )
    g.add_argument(
        "--trigger",
        default=None,
        metavar="FILTER",
        help='interactions that make a customer eligible: "resolution=very_ineffective"',
    )
    g.add_argument("--horizon-months", type=int, default=3, metavar="MONTHS")
    g.add_argument("--cluster", default=None, metavar="COL", help="customers column of clusters")
    p.add_argument(
        "--looks",
        type=int,
        default=1,
        metavar="K",
        help="a monitored test decided at K looks (cx assign --looks): thresholds and cost",
    )
    _spending_argument(p)
    p.add_argument(
        "--config", default=None, metavar="FILE", help="cx.toml: decision thresholds, guardrails"
    )
    _engine_arguments(p)
    p.set_defaults(func=_cmd_design)


def _spending_argument(p: argparse.ArgumentParser) -> None:
    """``--spending`` of ``cx assign`` and ``cx design``: the names of
    :data:`experiments.design.SPENDING`, written out so the parser does not import scipy."""
    p.add_argument(
        "--spending",
        choices=["obrien-fleming", "pocock"],
        default="obrien-fleming",
        help="alpha spending of the looks (default obrien-fleming: strict early looks)",
    )


def _emit(args: argparse.Namespace, payload: object, text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(payload, default=str, indent=2))
    else:
        print(text)


def _cmd_init(args: argparse.Namespace) -> int:
    path = store.resolve_path(args.store)
    existed = path.exists()
    with store.opened(path) as con:
        version = store.schema_version(con)
    state = "already initialised" if existed else "created"
    _emit(
        args,
        {"store": str(path), "schema_version": version, "created": not existed},
        f"store {path}: {state} (schema version {version})",
    )
    return EXIT_OK


def _cmd_load(args: argparse.Namespace) -> int:
    from attribution.load import load

    with store.opened(args.store) as con:
        result = load(con, args.table, args.file)
    _emit(args, {**asdict(result), "changed": result.changed}, result.describe())
    return EXIT_OK


def _cmd_simulate(args: argparse.Namespace) -> int:

    if args.lake:
        return _simulate_lake(args)
    path = store.resolve_path(args.store)
    started = time.perf_counter()
    with store.opened(path) as con:
        if not store.is_empty(con) and not args.replace:
            raise InputError(
                f"store {path} already holds data; pass --replace to overwrite it with a "
                "simulated world, or choose another --store"
            )
        con.execute("BEGIN TRANSACTION")
        try:
            if args.replace:
                store.clear(con)
            result = _simulate(con, args)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        counts = store.table_counts(con)
    rows = {t: counts[t] for t in (*store.LOADABLE_TABLES, "truth")}
    if counts.get("truth_customers"):
        rows["truth_customers"] = counts["truth_customers"]
    seconds = time.perf_counter() - started
    return _simulated(args, {"store": str(path)}, seconds, rows, result)


def _simulate(con, args: argparse.Namespace):
    """The simulated world of ``cx simulate``'s arguments, written into ``con``."""
    from attribution import synth

    return synth.simulate(
        con,
        args.customers,
        months=args.months,
        seed=args.seed,
        start=args.start,
        branches=args.branches,
        outreach_months=args.outreach_months,
        hidden_confounding=args.hidden_confounding,
        individual_effects=args.individual_effects,
        condition_follow_up=args.condition_follow_up,
    )


def _simulated(args: argparse.Namespace, where: dict, seconds: float, rows: dict, result) -> int:
    """Print what ``cx simulate`` wrote (``where``: ``{"store": path}`` or ``{"lake": path}``)."""
    payload = {**where, "seconds": round(seconds, 2), "rows": rows}
    payload.update({k: str(v) for k, v in asdict(result).items() if k not in payload})
    ((kind, path),) = where.items()
    text = (
        f"simulated {args.customers:,} customers x {args.months} months (seed {args.seed}) "
        f"into {'the lake ' if kind == 'lake' else ''}{path} in {seconds:.1f} s: "
        + ", ".join(f"{t} {n:,}" for t, n in rows.items())
    )
    _emit(args, payload, text)
    return EXIT_OK


def _simulate_lake(args: argparse.Namespace) -> int:
    """cx simulate --lake: the world as the contract's Parquet folders (and ``truth/``), through
    a temporary DuckDB file beside the lake that is deleted afterwards."""
    import tempfile
    from pathlib import Path

    from attribution import lake

    root = Path(args.lake)
    if root.exists() and any(root.iterdir()):
        raise InputError(f"lake folder {str(root)!r} is not empty; choose a new --lake")
    root.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(dir=root.parent, prefix=".cx-simulate-") as tmp,
        store.opened(Path(tmp) / "world.duckdb") as con,
    ):
        result = _simulate(con, args)
        rows = lake.write_lake(con, root, extra=("truth",))
    seconds = time.perf_counter() - started
    return _simulated(args, {"lake": str(root)}, seconds, rows, result)


def _cmd_summary(args: argparse.Namespace) -> int:
    from attribution.summary import summarize

    by = [c.strip() for c in args.by.split(",") if c.strip()]
    with store.opened(args.store, create=False) as con:
        result = summarize(con, by)
    _emit(args, result.to_dict(), f"store {store.resolve_path(args.store)}\n{result.describe()}")
    return EXIT_OK


def _segments(arg: str | None) -> list[str] | None:
    if arg is None:
        return None
    return [c.strip() for c in arg.split(",") if c.strip()]


_HEADLINE = [
    "experiment_id",
    "arm",
    "outcome",
    "segment",
    "metric",
    "mean",
    "lo",
    "hi",
    "p_positive",
]


def _table_text(frame) -> str:
    shown = frame[_HEADLINE].copy()
    for col in ("mean", "lo", "hi"):
        shown[col] = shown[col].map(lambda v: f"{v:,.4g}")
    shown["p_positive"] = shown["p_positive"].map(lambda v: f"{v:.2f}")
    return shown.to_string(index=False)


def _cmd_check(args: argparse.Namespace) -> int:
    from attribution.check import check_store
    from attribution.config import load_config

    cfg = load_config(args.config)
    with store.opened(args.store or cfg.store, create=False, read_only=True) as con:
        result = check_store(con, cfg)
    _emit(args, result.to_dict(), result.describe())
    return EXIT_OK if result.ok else EXIT_INPUT


def _cmd_readout(args: argparse.Namespace) -> int:
    from attribution.config import load_config
    from attribution.readout import read_out

    cfg = _with_engine(load_config(args.config), args)
    with _source(args, cfg) as con:
        result = read_out(
            con,
            args.experiment_id,
            segments=_segments(args.segments),
            horizon_months=args.horizon,
            config=cfg,
            check_srm=not args.ignore_srm,
        )
    text = result.describe() + "\n\n" + _table_text(result.table)
    _emit(args, result.to_records(), text)
    return EXIT_OK if result.passed else EXIT_GATE


def _engine_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--engine",
        choices=("duckdb", "spark"),
        default=None,
        help="where the cells are computed: the store (duckdb, default) or a lake (spark)",
    )
    p.add_argument("--lake", default=None, metavar="PATH", help="lake folder of Parquet tables")
    p.add_argument("--master", default=None, metavar="URL", help="Spark master (default local[2])")


def _with_engine(cfg, args: argparse.Namespace):
    """The configuration's [engine] with the command line's --engine, --lake, --master."""
    from dataclasses import replace

    from attribution.config import EngineSettings

    given = {"kind": args.engine, "lake": args.lake, "master": args.master}
    given = {k: v for k, v in given.items() if v is not None}
    if not given:
        return cfg
    if args.lake is not None and args.engine is None:
        given["kind"] = "spark"
    if "lake" in given:
        given["database"] = None
    base = cfg.engine.__dict__ | given
    return replace(cfg, engine=EngineSettings(**base))


@contextlib.contextmanager
def _source(args: argparse.Namespace, cfg, *, read_only: bool = False):
    """What a command reads: the DuckDB store, or the lake through Spark (attribution.lake)."""
    engine = cfg.engine
    if engine.kind == "duckdb":
        with store.opened(args.store or cfg.store, create=False, read_only=read_only) as con:
            yield con
        return
    from attribution import lake

    existing = lake.active_session()  # cx called from a notebook: its session stays
    spark = lake.session(engine.master, memory=engine.memory) if existing is None else existing
    opened = lake.open_lake(engine.lake, spark=spark, database=engine.database)
    try:
        yield opened
    finally:
        opened.close()
        if existing is None:
            spark.stop()


def _cmd_decide(args: argparse.Namespace) -> int:
    from attribution.config import load_config
    from experiments.decision import decide

    cfg = _with_engine(load_config(args.config), args)
    with _source(args, cfg) as con:
        decision = decide(
            con,
            args.experiment_id,
            segments=_segments(args.segments),
            horizon_months=args.horizon,
            config=cfg,
            check_srm=not args.ignore_srm,
        )
    _emit(args, decision.to_dict(), decision.describe())
    return EXIT_OK if decision.readout.passed else EXIT_GATE


def _cmd_refresh(args: argparse.Namespace) -> int:
    from attribution.config import load_config
    from attribution.refresh import refresh_store

    cfg = load_config(args.config)
    outcome = refresh_store(
        args.store or cfg.store,
        cfg,
        force=args.force,
        wait=args.wait,
        log=None if args.json else _log,
    )
    text = outcome.describe()
    if outcome.headline is not None and len(outcome.headline):
        text += "\n\n" + _table_text(outcome.headline)
    _emit(args, outcome.to_dict(), text)
    return outcome.exit_code


def _cmd_design(args: argparse.Namespace) -> int:
    from attribution.config import load_config
    from experiments.plan import MAX_WEEKS, detectable_effect, guardrails_from_history, plan_test

    cfg = load_config(args.config)

    given = {
        "baseline": args.baseline,
        "sd": args.sd,
        "r2": args.r2,
        "eligible_per_week": args.eligible_per_week,
        "horizon_weeks": args.horizon_weeks,
        "icc": args.icc,
        "cluster_size": args.cluster_size,
        "cluster_cv": args.cluster_cv,
        "events_per_week": args.events_per_week,
    }
    source, inputs, n_eligible, clusters, guards = None, None, None, None, None
    if args.from_store:
        from experiments.history import design_inputs

        with _source(args, _with_engine(cfg, args), read_only=True) as con:
            inputs = design_inputs(
                con,
                eligible=args.eligible,
                trigger=args.trigger,
                horizon_months=args.horizon_months,
                cluster=args.cluster,
            )
        derived = (
            inputs.for_retention() if args.metric == "retention" else inputs.for_means(args.metric)
        )
        if inputs.eligible_per_week is not None:
            derived["eligible_per_week"] = inputs.eligible_per_week
            if args.hazard_ratio is not None:
                derived["events_per_week"] = inputs.events_per_week
            derived["horizon_weeks"] = inputs.horizon_weeks
        if args.cluster:
            cl = inputs.for_cluster(args.metric)
            derived.update(icc=cl["icc"], cluster_size=cl["cluster_size"], cluster_cv=cl["cv"])
            clusters = inputs.n_clusters
        given = {k: v if v is not None else derived.get(k) for k, v in given.items()}
        source = {"store": str(store.resolve_path(args.store)), **inputs.to_dict()}
        n_eligible = inputs.n_eligible
        guards = guardrails_from_history(inputs, cfg.decision, cfg.interval.width)
    elif args.eligible or args.trigger or args.cluster:
        raise InputError("--eligible, --trigger and --cluster need --from-store")
    common = {
        "baseline": given["baseline"],
        "sd": given["sd"],
        "control_share": args.control_share,
        "alpha": args.alpha,
        "power": args.power,
        "r2": given["r2"] or 0.0,
        "continuity": args.continuity,
        "arms": args.arms,
        "metrics": args.metrics,
        "correction": args.correction,
        "icc": given["icc"],
        "cluster_size": given["cluster_size"],
        "cluster_cv": given["cluster_cv"] or 0.0,
    }
    mde, asked = args.mde, None
    if mde is None:
        mde, n = detectable_effect(
            args.metric,
            customers=args.customers,
            weeks=args.weeks,
            eligible_per_week=given["eligible_per_week"],
            horizon_weeks=given["horizon_weeks"],
            **common,
        )
        given_as = f"{n:,} customers" if args.weeks is None else f"{args.weeks:g} weeks"
        unit = f"{mde * 100:.2f} pp" if args.metric == "retention" else f"{mde:,.2f} per customer"
        asked = {
            "customers": args.customers,
            "weeks": args.weeks,
            "n_total": n,
            "mde": mde,
            "sentence": f"With {given_as} the smallest {args.metric} effect the test can detect "
            f"is {unit} ({n:,} customers); the plan below is sized for it.",
        }
    max_weeks = args.max_weeks if args.max_weeks is not None else (args.weeks or MAX_WEEKS)
    plan = plan_test(
        args.metric,
        mde,
        max_weeks=max_weeks,
        **common,
        eligible_per_week=given["eligible_per_week"],
        horizon_weeks=given["horizon_weeks"],
        value_per_unit=args.value_per_unit,
        hazard_ratio=args.hazard_ratio,
        events_per_week=given["events_per_week"],
        prior_mean=args.prior_mean,
        prior_sd=args.prior_sd,
        unit_cost=args.unit_cost,
        population=args.population,
        source=source,
        n_eligible=n_eligible,
        clusters_available=clusters,
        looks=args.looks,
        spending=args.spending,
        horizon_months=_horizon_months(args, given["horizon_weeks"]),
        guardrails=guards,
        roll_out_threshold=cfg.decision.roll_out_threshold,
    )
    text = plan.describe() if asked is None else asked["sentence"] + "\n" + plan.describe()
    text = text if inputs is None else inputs.describe() + "\n\n" + text
    payload = plan.to_dict() if asked is None else {**plan.to_dict(), "asked": asked}
    _emit(args, payload, text)
    return EXIT_OK


def _horizon_months(args: argparse.Namespace, horizon_weeks: float | None) -> int | None:
    """The outcome horizon in whole months a monitored design's looks are placed in (as
    ``cx assign --horizon-months`` records them): the store's horizon with --from-store, else
    --horizon-weeks in months; None when neither says."""
    if args.from_store:
        return args.horizon_months
    if horizon_weeks:
        return max(1, round(horizon_weeks * 12 / 52))
    return None


def _cmd_assign(args: argparse.Namespace) -> int:
    from attribution.config import load_config
    from experiments.assign import CONTROL, assign_from_file

    arms = _segments(args.arms) or [CONTROL, "treatment"]
    shares = None
    if args.shares:
        try:
            shares = [float(v) for v in args.shares.split(",")]
        except ValueError:
            raise InputError(
                f"--shares must be numbers separated by commas, got {args.shares!r}"
            ) from None
    monitoring = {}
    if args.looks is not None or args.horizon_months is not None:
        cfg = load_config(args.config)
        monitoring = {
            "looks": args.looks,
            "horizon_months": args.horizon_months,
            "spending": args.spending,
            "roll_out_threshold": cfg.decision.roll_out_threshold,
            "interval_width": cfg.interval.width,
        }
    with store.opened(args.store, create=False) as con:
        result = assign_from_file(
            con,
            args.experiment_id,
            args.intervention,
            args.eligible,
            args.salt,
            control_share=args.control_share,
            arms=arms,
            shares=shares,
            strata=_segments(args.strata) or (),
            covariates=_segments(args.covariates) or (),
            rerandomize_p=args.rerandomize_p,
            started=args.started,
            cluster=args.cluster,
            churn_after_window=args.churn_after_window,
            **monitoring,
        )
    _emit(args, result.to_dict(), result.describe())
    return EXIT_OK


def _cmd_attribute(args: argparse.Namespace) -> int:
    from attribution.causal import attribute
    from attribution.config import load_config

    cfg = load_config(args.config)
    outcomes = _segments(args.outcome) or []
    with store.opened(args.store or cfg.store, read_only=True) as con:
        result = attribute(
            con,
            args.intervention,
            condition=args.condition,
            outcome=outcomes if len(outcomes) > 1 else outcomes[0],
            confounders=_segments(args.confounders),
            as_of=args.as_of,
            config=cfg,
            horizon_months=args.horizon,
            segment=args.segment,
            gformula=False if args.no_gformula else None,
            doubly_robust=args.aipw,
            compare_with=args.compare_with.replace("-", "_"),
        )
    text = result.describe()
    if args.graph:
        text += f"\ncausal graph: {result.graph_png(args.graph)}"
    _emit(args, result.to_dict(), text)
    return EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    from attribution.config import load_config
    from attribution.report import build_report

    cfg = load_config(args.config)
    with store.opened(args.store or cfg.store, read_only=True) as con:
        result = build_report(con, args.out, config=cfg)
    _emit(args, result.to_dict(), result.describe())
    return EXIT_OK


def _capacity(arg: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in _segments(arg) or []:
        name, sep, text = part.partition("=")
        try:
            out[name.strip()] = int(text)
        except ValueError:
            raise InputError(
                f"--capacity {part!r}: give INTERVENTION=N, N a whole number"
            ) from None
        if not sep:
            raise InputError(f"--capacity {part!r}: give INTERVENTION=N")
    return out


def _cmd_target(args: argparse.Namespace) -> int:
    from attribution.config import load_config
    from attribution.targeting.population import check_month
    from attribution.targeting.workflow import check_out, score_month, target, write_table

    cfg = load_config(args.config)
    capacity = _capacity(args.capacity)
    if args.out:
        check_out(args.out)  # before minutes of fitting
    population = None
    with store.opened(args.store or cfg.store, read_only=True) as con:
        if args.score_month is not None:
            check_month(con, args.score_month)  # before minutes of fitting
        result = target(
            con, args.experiments, budget=args.budget, capacity=capacity, learner=args.learner,
            seed=args.seed, config=cfg,
        )  # fmt: skip
        if args.score_month is not None:
            population = score_month(con, result, args.score_month, budget=args.budget,
                                     capacity=capacity, config=cfg)  # fmt: skip
    payload, text = result.to_dict(), result.describe()
    if population is not None:
        payload["population"] = population.to_dict()
        text += "\n" + population.describe()
    if args.out:
        picks = result.policy_table() if population is None else population.picks
        path = write_table(picks, args.out)
        payload["out"] = str(path)
        text += f"\npolicy: {len(picks):,} customers written to {path}"
    _emit(args, payload, text)
    return EXIT_OK


def _cmd_runs(args: argparse.Namespace) -> int:
    from attribution.runs import list_runs

    with store.opened(args.store, create=False) as con:
        frame = list_runs(con)
    records = json.loads(frame.to_json(orient="records", date_format="iso"))
    _emit(args, records, frame.to_string(index=False) if len(frame) else "no runs yet")
    return EXIT_OK


def _log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def plain_warnings(command: str):
    """Warnings and the package's log warnings as one line each on stderr, while a command runs.

    A user of ``cx`` needs the message (a fit that failed its gate, a compiled-model cache entry
    rebuilt, a fallback sampler), not the source file and line Python prints by default.
    """

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"cx {command}: warning: {message}", file=sys.stderr)

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"cx {command}: warning: %(message)s"))
    handler.setLevel(logging.WARNING)
    logger = logging.getLogger("attribution")
    saved = warnings.showwarning, logger.propagate
    warnings.showwarning = show
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        warnings.showwarning, logger.propagate = saved
        logger.removeHandler(handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cx`` command; returns the exit code.

    Examples
    --------
    >>> main(["--version"])  # doctest: +SKIP
    cx 0.1.0
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors exit 2, --help exits 0
        return int(exc.code or 0)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        with plain_warnings(args.command):
            return func(args)
    except CxError as exc:
        print(f"cx {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"cx {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: a message, not a trace
        if os.environ.get("CX_DEBUG"):
            traceback.print_exc()
        print(f"cx {args.command}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
