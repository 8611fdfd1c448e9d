"""Configuration (``cx.toml``): every setting a run uses, with stated defaults, checked up front.

A missing file means the documented defaults. A wrong key or value is an :class:`InputError`
that names the file, the key and what was expected, before any work starts. Example::

    store = "data/cx.duckdb"
    observational = []         # no observational questions (declare them as [[observational]])

    [model]
    segments = ["tier"]        # segment columns effects are broken down by
    outcomes = ["retention", "revenue", "cost_to_serve"]  # a subset publishes no money rows
    horizon_months = 0         # 0: the last outcome month observed for the experiment
    pre_period = true          # adjust for pre-period spend bands where history exists
    sampler = "nutpie"         # or "pymc"
    chains = 4
    draws = 1000
    tune = 1000
    seed = 0

    [money]
    margin_rate = 0.30
    value_horizon_months = 12
    discount_rate = 0.10

    [interval]
    width = 0.90
    kind = "eti"

    [gate]
    max_rhat = 1.01
    min_ess_bulk = 400
    min_ess_tail = 400
    max_divergences = 0

    [experiments]
    include = []               # empty: every experiment in the store

    [decision]                 # experiments.decision.decide: roll out, stop or extend
    roll_out_threshold = 0.90  # roll out needs P(net value > 0) >= this ...
    stop_threshold = 0.10      # ... stop when P(net value > 0) <= this
    csat_tolerance = 0.05      # CSAT (1-5 scale) may fall by at most this many points
    # cost_margin = 2.0        # currency per customer over the window cost-to-serve may rise;
    cost_margin_share = 0.05   # when cost_margin is not set: this share of the control arm's
                               # mean cost-to-serve per customer over the window

    [causal]                   # cx attribute: observational attribution (attribution.causal)
    confounders = []           # empty: the default adjustment set
    instruments = []
    unobserved = []            # declared unobserved common causes (makes it unidentifiable)
    descendants = []           # declared consequences of the treatment: never confounders
    lookback_months = 3
    bootstrap = 200            # resamples for the DoWhy estimators' intervals
    refuter_simulations = 10
    subset_fraction = 0.8
    overlap_low = 0.01         # propensity bounds of the overlap check ...
    overlap_high = 0.99
    trim = true                # ... and customers outside them are left out
    cells = "propensity"       # Bayesian cell route's cells: "propensity" strata or
                               # "confounders" (band combinations; single trials only)
    strata = 0                 # propensity strata; 0: treated // 50, within 20..100
    bands = 4                  # quantile bands per numeric confounder ("confounders" cells)
    draws = 500                # draws per chain of the cell route (chains, sampler from [model])
    tune = 500
    seed = 0

    [targeting]                # cx refresh: per-customer uplift and a budgeted policy
    experiments = []           # randomized experiments, one per intervention; empty: none
    # budget = 60000           # most to spend on the interventions; leave out: no limit
    learner = "auto"           # X-learner for unbalanced arms, doubly robust otherwise
    seed = 0
    score_month = ""           # "latest" or YYYY-MM: also pick from the customers active then
                               # (features from before it); empty: the experiments' own only

    [engine]                   # where the cells are computed (attribution.lake)
    kind = "duckdb"            # or "spark": the contract's tables in a lake, read by Spark
    master = "local[2]"        # Spark master URL when cx starts the session
    # lake = "/data/cx-lake"   # spark: a folder of Parquet tables (customers/, outcomes/, ...)
    # database = "cx"          # spark: or a catalog database with tables of those names
    # memory = "8g"            # Spark driver memory

Observational questions for ``cx refresh`` (default none) are an array of tables; each is fitted
with :func:`attribution.causal.attribute` after the experiments and published with them::

    [[observational]]
    name = "outreach"                    # unique: names the question in logs, runs and reports
    intervention = "proactive_outreach"  # or condition = "resolution=very_effective" (one of two)
    outcomes = ["retention", "revenue", "cost_to_serve"]  # default all three; money needs all
    confounders = []                     # empty: [causal] confounders, else the defaults
    segment = ""                         # optional categorical confounder to break down by
    as_of = ""                           # optional month, YYYY-MM or YYYY-MM-DD
    gformula = true                      # fit the Bayesian cell route too (its gate must pass)
    compare_with = "eligible"            # a condition: or "other_events" (another case that month)

What :attr:`Config.hash` covers (the hash decides whether ``cx refresh`` refits):

- ``store``, ``[model]``, ``[money]``, ``[interval]``, ``[gate]`` and ``[experiments]``;
- ``model.outcomes`` only when it is not all three outcomes (so stores fitted before the
  setting existed keep their hash);
- ``[targeting]`` only when it names experiments (it adds a recorded policy to the run), its
  ``score_month`` only when set; a question's ``compare_with`` only when not ``"eligible"``;
- ``[causal]`` and the ``[[observational]]`` questions only when at least one question is
  declared: then the causal settings change published numbers. Without questions they change
  nothing a refresh publishes and stay out, like ``[decision]``, which never counts, and
  ``[engine]`` (both engines compute the same cells).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import date
from pathlib import Path

from attribution.errors import InputError
from attribution.settings import COMPARE_WITH, SAMPLERS, GateSetting, IntervalSetting
from attribution.store import parse_period
from attribution.validation import one_of, whole
from attribution.value import MoneySettings

#: The outcomes models fit, in the order they are reported. Money needs all three.
OUTCOMES = ("retention", "revenue", "cost_to_serve")


@dataclass(frozen=True)
class ModelSettings:
    """How models are fitted.

    Parameters
    ----------
    segments : tuple of str
        Columns of ``customers`` that effects are broken down by (besides overall); empty: overall
        only. Lower-case identifiers, no repeats; checked against the store before a refresh.
    outcomes : tuple of str
        Outcomes to fit, from :data:`OUTCOMES` (default all three). A subset saves the other
        fits, but net value, ROI and payback need all three, so none are published.
    horizon_months : int
        Months of outcomes from each experiment's start month on, >= 0; 0 (default): up to the
        last outcome month observed for the experiment.
    pre_period : bool
        Adjust for pre-period spend bands where history exists. Default true.
    sampler : str
        ``"nutpie"`` (default) or ``"pymc"``.
    chains, draws, tune : int
        Chains, kept draws per chain and tuning draws per chain, each >= 1. Defaults 4, 1000,
        1000.
    seed : int
        Random seed of the sampler, >= 0. Default 0.
    """

    segments: tuple[str, ...] = ("tier",)
    outcomes: tuple[str, ...] = OUTCOMES
    horizon_months: int = 0
    pre_period: bool = True
    sampler: str = "nutpie"
    chains: int = 4
    draws: int = 1000
    tune: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        one_of("model.sampler", self.sampler, SAMPLERS)
        for name in ("chains", "draws", "tune"):
            whole(f"model.{name}", getattr(self, name))
        whole("model.horizon_months", self.horizon_months, minimum=0)
        whole("model.seed", self.seed, minimum=0)
        _names("model.segments", self.segments, identifiers=True)
        _outcome_names("model.outcomes", self.outcomes)

    @property
    def money(self) -> bool:
        """True when every outcome is fitted, so net value, ROI and payback can be computed."""
        return set(self.outcomes) == set(OUTCOMES)


def _outcome_names(key: str, names: tuple[str, ...]) -> None:
    if not names:
        raise InputError(f"{key} is empty: give at least one of {list(OUTCOMES)}")
    for name in names:
        if name not in OUTCOMES:
            raise InputError(f"{key}: {name!r} is not an outcome; valid: {list(OUTCOMES)}")
    _names(key, names)


@dataclass(frozen=True)
class ExperimentSelection:
    """Which experiments a refresh fits (empty: all)."""

    include: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _names("experiments.include", self.include)


def _names(key: str, names: tuple[str, ...], *, identifiers: bool = False) -> None:
    """Names in a list setting: non-empty, no repeats, and column names when ``identifiers``."""
    for name in names:
        if not name.strip():
            raise InputError(f"{key} has an empty name: {list(names)}")
        if identifiers and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise InputError(
                f"{key}: {name!r} is not a column name (lower-case letters, digits and _)"
            )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(f"{key} names {repeated} more than once")


@dataclass(frozen=True)
class DecisionSettings:
    """Thresholds of the roll out / stop / extend decision (:func:`experiments.decision.decide`).

    Parameters
    ----------
    roll_out_threshold : float
        Roll out needs P(net value > 0) at least this (and passed diagnostics and guardrails).
        In (0, 1), above ``stop_threshold``. Default 0.90.
    stop_threshold : float
        Stop when P(net value > 0) is at most this (or a guardrail failed). In (0, 1). Default
        0.10.
    csat_tolerance : float
        Points on the 1-5 CSAT scale the treated arm's mean CSAT may fall below control's and
        still pass (the non-inferiority margin), in [0, 4). Default 0.05.
    cost_margin : float or None
        Currency per customer over the readout window that cost-to-serve may rise by, >= 0.
        None (default): ``cost_margin_share`` of the control arm's mean cost-to-serve per
        customer over the window.
    cost_margin_share : float
        Used when ``cost_margin`` is None, >= 0. Default 0.05 (5 %).
    """

    roll_out_threshold: float = 0.90
    stop_threshold: float = 0.10
    csat_tolerance: float = 0.05
    cost_margin: float | None = None
    cost_margin_share: float = 0.05

    def __post_init__(self) -> None:
        for name in ("roll_out_threshold", "stop_threshold"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise InputError(f"decision.{name} must be in (0, 1), got {getattr(self, name)}")
        if self.stop_threshold >= self.roll_out_threshold:
            raise InputError(
                f"decision.stop_threshold ({self.stop_threshold}) must be below "
                f"decision.roll_out_threshold ({self.roll_out_threshold})"
            )
        if not 0.0 <= self.csat_tolerance < 4.0:
            raise InputError(
                f"decision.csat_tolerance must be in [0, 4) CSAT points, got {self.csat_tolerance}"
            )
        if self.cost_margin is not None and not (
            math.isfinite(self.cost_margin) and self.cost_margin >= 0
        ):
            raise InputError(f"decision.cost_margin must be >= 0, got {self.cost_margin}")
        if not (math.isfinite(self.cost_margin_share) and self.cost_margin_share >= 0):
            raise InputError(
                f"decision.cost_margin_share must be >= 0, got {self.cost_margin_share}"
            )


@dataclass(frozen=True)
class CausalSettings:
    """Observational attribution (:func:`attribution.causal.attribute`): graph, estimators, checks.

    Parameters
    ----------
    confounders : tuple of str
        The declared adjustment set; empty (default) means
        :data:`attribution.observational.DEFAULT_CONFOUNDERS`.
    instruments : tuple of str
        Columns declared as instruments (cause the treatment only); drawn in the graph, kept out
        of the adjustment set.
    unobserved : tuple of str
        Names of declared unobserved common causes of treatment and outcome; with any, the
        effect is not identifiable by the backdoor criterion and nothing is estimated.
    descendants : tuple of str
        Variables the treatment causes (measured after it); drawn in the graph between
        treatment and outcome. A confounder named here is refused.
    lookback_months : int
        Months before ``as_of`` for prior revenue, cost and service cases. Default 3.
    bootstrap : int
        Bootstrap resamples for the DoWhy estimators' intervals (>= 20). Default 200.
    refuter_simulations : int
        Simulations per DoWhy refuter (placebo, random common cause, data subset). Default 10.
    subset_fraction : float
        Share of customers each data-subset refutation keeps, in (0, 1). Default 0.8.
    overlap_low, overlap_high : float
        Propensity bounds of the overlap check; customers outside are reported and, with
        ``trim``, left out. Defaults 0.01 and 0.99.
    trim : bool
        Leave customers outside the overlap bounds out of every estimate. Default true.
    cells : {"propensity", "confounders"}
        The Bayesian cell route's cells: strata of the propensity score x arm x trial month x
        segment (:mod:`attribution.causal.strata`; a few hundred whatever the number of
        customers, and it handles customers repeated across pooled trials), or every
        confounder's bands combined (single trials only; cells multiply with confounders).
        Default ``"propensity"``.
    strata : int
        Propensity strata; 0 (default) chooses ``treated // 50`` within 20..100.
    bands : int
        Quantile bands per numeric confounder for ``cells = "confounders"``. Default 4.
    draws, tune : int
        Kept and tuning draws per chain of the cell route (chains, sampler and seed come from
        ``[model]``). Default 500 each: its posterior is close to normal, and 4 x 500 draws
        gave a bulk ESS of ~3,500 and a tail ESS of ~1,300 on the simulator's outreach question,
        far above the gate's 400, at half the time of 1,000 each.
    seed : int
        Seed of the bootstrap, the refuters and the propensity model. Default 0.
    """

    confounders: tuple[str, ...] = ()
    instruments: tuple[str, ...] = ()
    unobserved: tuple[str, ...] = ()
    descendants: tuple[str, ...] = ()
    lookback_months: int = 3
    bootstrap: int = 200
    refuter_simulations: int = 10
    subset_fraction: float = 0.8
    overlap_low: float = 0.01
    overlap_high: float = 0.99
    trim: bool = True
    cells: str = "propensity"
    strata: int = 0
    bands: int = 4
    draws: int = 500
    tune: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        whole("causal.lookback_months", self.lookback_months)
        whole("causal.bootstrap", self.bootstrap, minimum=20)
        whole("causal.refuter_simulations", self.refuter_simulations)
        if not 0.0 < self.subset_fraction < 1.0:
            raise InputError(
                f"causal.subset_fraction must be in (0, 1), got {self.subset_fraction}"
            )
        if not 0.0 <= self.overlap_low < self.overlap_high <= 1.0:
            raise InputError(
                "causal.overlap_low and causal.overlap_high must satisfy 0 <= low < high <= 1, "
                f"got {self.overlap_low} and {self.overlap_high}"
            )
        whole("causal.bands", self.bands)
        if self.cells not in ("propensity", "confounders"):
            raise InputError(
                f"causal.cells must be 'propensity' or 'confounders', got {self.cells!r}"
            )
        whole("causal.strata", self.strata, minimum=0)
        if self.strata == 1:
            raise InputError("causal.strata must be 0 (the rule) or at least 2, got 1")
        for name in ("draws", "tune"):
            whole(f"causal.{name}", getattr(self, name))
        whole("causal.seed", self.seed, minimum=0)


_QUESTION_NAME = re.compile(r"[a-z0-9_][a-z0-9_-]{0,62}")
_MONTH = re.compile(r"(\d{4})-(\d{2})(?:-(\d{2}))?")


@dataclass(frozen=True)
class TargetingSettings:
    """Targeting in the nightly refresh (``[targeting]``; :mod:`attribution.targeting`).

    Attributes
    ----------
    experiments : tuple of str
        Randomized experiments, one per intervention, whose per-customer uplift the refresh fits
        and whose budgeted policy it records (with the run, for the report). Default none:
        no targeting.
    budget : float, optional
        Most to spend on the interventions; default no limit.
    learner : str
        ``auto`` (X-learner for unbalanced arms, doubly robust otherwise), ``dr``, ``t`` or
        ``x``.
    seed : int
    score_month : str
        ``"latest"`` (the store's last month) or ``YYYY-MM``: the refresh also scores the
        customers active in that month and records whom the budget picks among them
        (:mod:`attribution.targeting.population`). Empty (default): the experiments' own
        customers only.
    """

    experiments: tuple[str, ...] = ()
    budget: float | None = None
    learner: str = "auto"
    seed: int = 0
    score_month: str = ""

    def __post_init__(self) -> None:
        if self.learner not in ("auto", "dr", "t", "x"):
            raise InputError(f"targeting.learner must be auto, dr, t or x, got {self.learner!r}")
        if self.budget is not None and self.budget <= 0:
            raise InputError(f"targeting.budget must be > 0, got {self.budget!r}")
        _names("targeting.experiments", self.experiments, identifiers=False)
        if self.score_month not in ("", "latest"):
            try:
                parse_period(self.score_month)
            except InputError:
                raise InputError(
                    'targeting.score_month must be "latest", a month YYYY-MM or empty, got '
                    f"{self.score_month!r}"
                ) from None


@dataclass(frozen=True)
class ObservationalQuestion:
    """One observational question a refresh fits (a ``[[observational]]`` table).

    Text settings use ``""`` for "not set" (TOML has no null).

    Parameters
    ----------
    name : str
        Unique among the questions: lower-case letters, digits, ``_`` and ``-``. Names the
        question in logs, run diagnostics, published rows (``question``) and the report.
    intervention : str
        A name in ``interventions.intervention``; or give ``condition`` (exactly one of the two).
    condition : str
        ``column=value`` on ``interactions`` (``|`` between alternative values).
    outcomes : tuple of str
        From :data:`OUTCOMES`, default all three; money rows need all three.
    confounders : tuple of str
        The adjustment set; empty: ``[causal] confounders``, else the module defaults.
    segment : str
        A categorical confounder to break effects and money down by; ``""``: overall only.
    as_of : str
        The month outcomes are measured from, ``YYYY-MM`` or ``YYYY-MM-DD``; ``""``: the
        default of :func:`attribution.observational.observational_frame`.
    gformula : bool
        Fit the Bayesian cell route too (default true); each fit must pass the diagnostics gate
        for the run to publish.
    compare_with : str
        ``"eligible"`` (default) or, for a condition, ``"other_events"``: see
        :func:`attribution.observational.observational_frame`.
    """

    name: str = ""
    intervention: str = ""
    condition: str = ""
    outcomes: tuple[str, ...] = OUTCOMES
    confounders: tuple[str, ...] = ()
    segment: str = ""
    as_of: str = ""
    gformula: bool = True
    compare_with: str = "eligible"

    def __post_init__(self) -> None:
        if not _QUESTION_NAME.fullmatch(self.name):
            raise InputError(
                f"observational.name must be lower-case letters, digits, _ and - (at most 63), "
                f"got {self.name!r}"
            )
        key = f"observational {self.name!r}"
        if bool(self.intervention.strip()) == bool(self.condition.strip()):
            raise InputError(
                f"{key}: give exactly one of intervention and condition, got intervention="
                f"{self.intervention!r}, condition={self.condition!r}"
            )
        if self.condition and "=" not in self.condition:
            raise InputError(
                f"{key}: condition must be column=value on interactions "
                f"(e.g. resolution=very_effective), got {self.condition!r}"
            )
        one_of(f"{key}: compare_with", self.compare_with, COMPARE_WITH)
        if self.compare_with == "other_events" and not self.condition:
            raise InputError(
                f'{key}: compare_with = "other_events" compares a condition\'s events with '
                "other events; give a condition, not an intervention"
            )
        _outcome_names(f"{key}: outcomes", self.outcomes)
        _names(f"{key}: confounders", self.confounders, identifiers=True)
        if self.segment:
            _names(f"{key}: segment", (self.segment,), identifiers=True)
        if self.as_of:
            m = _MONTH.fullmatch(self.as_of)
            ok = m is not None and 1 <= int(m.group(2)) <= 12
            if ok and m.group(3) is not None:
                try:
                    date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
                except ValueError:
                    ok = False
            if not ok:
                raise InputError(
                    f"{key}: as_of must be a month, YYYY-MM or YYYY-MM-DD, got {self.as_of!r}"
                )

    @property
    def label(self) -> str:
        """What "treated" means, as the report words it."""
        if self.intervention:
            return f"intervention {self.intervention}"
        return f"condition {self.condition}"


ENGINES = ("duckdb", "spark")


@dataclass(frozen=True)
class EngineSettings:
    """Where the heavy aggregation (the cells) runs: DuckDB on the store, or Spark on a lake.

    Parameters
    ----------
    kind : {"duckdb", "spark"}
        ``duckdb`` (default): the store file. ``spark``: the contract's tables in a lake folder
        (``lake``) or a Spark catalog database (``database``), read by Spark
        (:mod:`attribution.lake`); runs and estimates still go to the DuckDB store.
    master : str
        Spark master URL when the session is built here. Default ``local[2]``.
    lake : str, optional
        Folder of Parquet tables (``customers/``, ``outcomes/``, ...).
    database : str, optional
        Instead of ``lake``: a catalog database with tables of the contract's names.
    memory : str, optional
        Spark driver memory, e.g. ``"8g"``.
    """

    kind: str = "duckdb"
    master: str = "local[2]"
    lake: str | None = None
    database: str | None = None
    memory: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ENGINES:
            raise InputError(f"engine.kind must be one of {list(ENGINES)}, got {self.kind!r}")
        if self.kind == "spark" and (self.lake is None) == (self.database is None):
            raise InputError(
                "engine.kind = 'spark' needs the lake: engine.lake (a folder of Parquet tables) "
                "or engine.database (a catalog database), one of them"
            )


@dataclass(frozen=True)
class Config:
    """Everything a run needs. ``Config()`` is the documented defaults."""

    store: str | None = None
    model: ModelSettings = field(default_factory=ModelSettings)
    money: MoneySettings = field(default_factory=MoneySettings)
    interval: IntervalSetting = field(default_factory=IntervalSetting)
    gate: GateSetting = field(default_factory=GateSetting)
    experiments: ExperimentSelection = field(default_factory=ExperimentSelection)
    decision: DecisionSettings = field(default_factory=DecisionSettings)
    causal: CausalSettings = field(default_factory=CausalSettings)
    observational: tuple[ObservationalQuestion, ...] = ()
    engine: EngineSettings = field(default_factory=EngineSettings)
    targeting: TargetingSettings = field(default_factory=TargetingSettings)

    def __post_init__(self) -> None:
        names = [q.name for q in self.observational]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise InputError(f"observational: name(s) {repeated} used by more than one question")

    def to_dict(self) -> dict:
        """Plain dictionary of every setting (tuples as lists)."""
        return json.loads(json.dumps(asdict(self)))

    @property
    def hash(self) -> str:
        """SHA-256 of the settings (not of the file's formatting): identifies a configuration.

        ``decision`` is left out: it changes no number that a refresh fits or publishes; so is
        ``engine`` (both engines compute the same cells). So are ``causal`` and
        ``observational`` unless a question is declared, and ``model.outcomes`` when it is all
        three (see the module docstring).
        """
        settings = self.to_dict()
        del settings["decision"], settings["engine"]
        if not self.observational:
            del settings["causal"], settings["observational"]
        if not self.targeting.experiments:
            del settings["targeting"]
        elif not self.targeting.score_month:
            del settings["targeting"]["score_month"]  # configurations from before it keep theirs
        for question in settings.get("observational", []):
            if question["compare_with"] == "eligible":
                del question["compare_with"]  # questions from before the setting keep theirs
        if tuple(settings["model"]["outcomes"]) == OUTCOMES:
            del settings["model"]["outcomes"]
        text = json.dumps(settings, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


_SECTIONS = {
    "model": ModelSettings,
    "money": MoneySettings,
    "interval": IntervalSetting,
    "gate": GateSetting,
    "experiments": ExperimentSelection,
    "decision": DecisionSettings,
    "causal": CausalSettings,
    "engine": EngineSettings,
    "targeting": TargetingSettings,
}


def load_config(path: str | Path | None = None) -> Config:
    """Read a ``cx.toml`` file; ``None`` gives the defaults.

    Raises
    ------
    InputError
        Unreadable TOML, an unknown section or key, or a value of the wrong type or range.

    Examples
    --------
    >>> load_config().model.chains
    4
    """
    if path is None:
        return Config()
    p = Path(path)
    if not p.exists():
        raise InputError(f"configuration file {p} does not exist")
    try:
        raw = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{p}: not valid TOML: {exc}") from exc
    return config_from_dict(raw, source=str(p))


def config_from_dict(raw: dict, source: str = "configuration") -> Config:
    """Build a :class:`Config` from a parsed TOML dictionary, checking every key."""
    kwargs: dict = {}
    for key, value in raw.items():
        if key == "store":
            if not isinstance(value, str) or not value.strip():
                raise InputError(f"{source}: store must be a path string, got {value!r}")
            kwargs["store"] = value
        elif key in _SECTIONS:
            if not isinstance(value, dict):
                raise InputError(f"{source}: [{key}] must be a table of settings")
            kwargs[key] = _section(_SECTIONS[key], key, value, source)
        elif key == "observational":
            kwargs[key] = _questions(value, source)
        else:
            allowed = ", ".join(["store", *_SECTIONS, "observational"])
            raise InputError(f"{source}: unknown setting {key!r} (allowed: {allowed})")
    try:
        return Config(**kwargs)
    except InputError as exc:
        raise InputError(f"{source}: {exc}") from exc


def _questions(value, source: str) -> tuple[ObservationalQuestion, ...]:
    """The ``[[observational]]`` tables, each checked like a section."""
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise InputError(
            f"{source}: observational must be an array of tables ([[observational]]), got {value!r}"
        )
    out = []
    for i, table in enumerate(value):
        name = table.get("name")
        where = f"observational[{i}]" + (f" ({name!r})" if isinstance(name, str) else "")
        if "name" not in table:
            raise InputError(f"{source}: {where} has no name: give each question a unique name")
        out.append(_section(ObservationalQuestion, where, table, source))
    return tuple(out)


def _section(cls, name: str, values: dict, source: str):
    defaults = {f.name: f for f in fields(cls)}
    out = {}
    for key, value in values.items():
        if key not in defaults:
            raise InputError(
                f"{source}: unknown setting {name}.{key} (allowed: {', '.join(defaults)})"
            )
        spec = defaults[key]
        default = spec.default_factory() if spec.default is MISSING else spec.default
        if default is None and value is None:  # from Python (TOML has no null): the default
            out[key] = None
            continue
        if default is None and str(spec.type).startswith("str"):  # optional text: a path, a name
            if not isinstance(value, str) or not value.strip():
                raise InputError(f"{source}: {name}.{key} must be text, got {value!r}")
            out[key] = value
            continue
        out[key] = _coerce(f"{name}.{key}", value, default, source)
    try:
        return cls(**out)
    except InputError as exc:
        raise InputError(f"{source}: {exc}") from exc


def _coerce(key: str, value, default, source: str):
    if default is None:  # an optional number (TOML has no null: leave the key out for None)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok:
            raise InputError(f"{source}: {key} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise InputError(f"{source}: {key} must be a finite number, got {value!r}")
        return float(value)
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, tuple):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise InputError(
            f"{source}: {key} must be {type(default).__name__} like {default!r}, got {value!r}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        # TOML allows nan and inf; a NaN threshold would pass every comparison, so refuse them.
        raise InputError(f"{source}: {key} must be a finite number, got {value!r}")
    return value
