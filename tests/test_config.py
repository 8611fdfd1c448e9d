"""cx.toml: defaults stated once, every wrong key or value named before any work."""

from __future__ import annotations

import pytest

from attribution.config import Config, config_from_dict, load_config
from attribution.errors import InputError


def write(tmp_path, text: str):
    path = tmp_path / "cx.toml"
    path.write_text(text)
    return path


def test_no_file_means_the_documented_defaults():
    cfg = load_config(None)
    assert cfg == Config()
    assert cfg.interval.width == 0.90 and cfg.gate.max_rhat == 1.01
    assert cfg.gate.min_ess_bulk == 400 and cfg.gate.max_divergences == 0
    assert cfg.money.margin_rate == 0.30 and cfg.model.segments == ("tier",)


def test_a_full_file_is_read(tmp_path):
    cfg = load_config(
        write(
            tmp_path,
            """
store = "x.duckdb"
[model]
segments = ["tier", "region"]
draws = 500
[money]
margin_rate = 0.4
[interval]
width = 0.8
[experiments]
include = ["exp_a"]
""",
        )
    )
    assert cfg.store == "x.duckdb" and cfg.model.segments == ("tier", "region")
    assert cfg.model.draws == 500 and cfg.money.margin_rate == 0.4
    assert cfg.interval.quantiles == pytest.approx((0.1, 0.9))
    assert cfg.experiments.include == ("exp_a",)


def test_the_hash_follows_settings_not_formatting(tmp_path):
    a = load_config(write(tmp_path, "[money]\nmargin_rate = 0.4\n"))
    b = load_config(write(tmp_path, "[money]\n\n  margin_rate=0.40   # same\n"))
    assert a.hash == b.hash != Config().hash


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour = 1\n", "unknown setting 'colour'"),
        ("[model]\nchain = 4\n", r"unknown setting model\.chain \(allowed: segments"),
        ("[model]\nchains = 'four'\n", r"model\.chains must be int"),
        ("[model]\nsampler = 'gibbs'\n", r"model.sampler must be one of \['nutpie', 'pymc'\]"),
        ("[interval]\nwidth = 1.5\n", r"interval width must be in \(0, 1\)"),
        ("[gate]\nmax_rhat = 0.9\n", "max_rhat must be >= 1.0"),
        ("[money]\nmargin_rate = 2\n", r"margin_rate must be in \[0, 1\]"),
        ("[model\n", "not valid TOML"),
    ],
)
def test_wrong_keys_and_values_are_named(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(InputError, match=message) as info:
        load_config(path)
    assert "cx.toml" in str(info.value)


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


# ------------------------------------------------------------------------------------------
# [decision]: the roll out / stop / extend thresholds
# ------------------------------------------------------------------------------------------
def test_decision_defaults_are_the_documented_ones():
    d = Config().decision
    assert (d.roll_out_threshold, d.stop_threshold) == (0.90, 0.10)
    assert d.csat_tolerance == 0.05
    assert d.cost_margin is None and d.cost_margin_share == 0.05


def test_a_decision_section_is_read_and_an_integer_margin_becomes_a_float(tmp_path):
    cfg = load_config(
        write(
            tmp_path,
            "[decision]\nroll_out_threshold = 0.95\nstop_threshold = 0.2\n"
            "csat_tolerance = 0.1\ncost_margin = 2\ncost_margin_share = 0.1\n",
        )
    )
    d = cfg.decision
    assert (d.roll_out_threshold, d.stop_threshold, d.csat_tolerance) == (0.95, 0.2, 0.1)
    assert d.cost_margin == 2.0 and isinstance(d.cost_margin, float)
    assert d.cost_margin_share == 0.1


def test_decision_thresholds_do_not_change_the_config_hash(tmp_path):
    # The hash decides whether a refresh refits; decision thresholds change no fitted number.
    cfg = load_config(write(tmp_path, "[decision]\nroll_out_threshold = 0.8\n"))
    assert cfg.decision.roll_out_threshold == 0.8
    assert cfg.hash == Config().hash
    assert cfg.to_dict()["decision"]["roll_out_threshold"] == 0.8


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[decision]\nrollout = 0.9\n", r"unknown setting decision\.rollout \(allowed: roll_out"),
        ("[decision]\nroll_out_threshold = 1.0\n", r"decision\.roll_out_threshold must be in"),
        ("[decision]\nstop_threshold = 0\n", r"decision\.stop_threshold must be in \(0, 1\)"),
        (
            "[decision]\nstop_threshold = 0.5\nroll_out_threshold = 0.4\n",
            r"decision\.stop_threshold \(0\.5\) must be below decision\.roll_out_threshold",
        ),
        ("[decision]\ncsat_tolerance = -0.1\n", r"decision\.csat_tolerance must be in \[0, 4\)"),
        ("[decision]\ncost_margin = -1\n", r"decision\.cost_margin must be >= 0, got -1"),
        ("[decision]\ncost_margin = 'five'\n", r"decision\.cost_margin must be a number"),
        ("[decision]\ncost_margin_share = -0.05\n", r"decision\.cost_margin_share must be >= 0"),
        ("[decision]\nroll_out_threshold = true\n", r"decision\.roll_out_threshold must be float"),
        ("decision = 3\n", r"\[decision\] must be a table"),
    ],
)
def test_wrong_decision_settings_are_named(tmp_path, text, message):
    with pytest.raises(InputError, match=message) as info:
        load_config(write(tmp_path, text))
    assert "cx.toml" in str(info.value)


# ------------------------------------------------------------------------------------------
# The documented example is the defaults, and every other wrong value is named up front
# ------------------------------------------------------------------------------------------
def _documented_example() -> str:
    """The TOML example in attribution.config's docstring (the indented block after '::')."""
    import attribution.config as module

    block = module.__doc__.split("::", 1)[1]
    lines = []
    for line in block.splitlines()[1:]:
        if line and not line.startswith("    "):
            break
        lines.append(line[4:])
    return "\n".join(lines)


def test_the_documented_example_loads_and_is_the_defaults(tmp_path):
    text = _documented_example()
    assert "[model]" in text and "[gate]" in text and "[experiments]" in text
    cfg = load_config(write(tmp_path, text))
    assert cfg == Config(store="data/cx.duckdb")


def test_every_setting_of_the_defaults_is_in_the_documented_example():
    text = _documented_example()
    for section, values in Config().to_dict().items():
        if not isinstance(values, dict):
            assert f"{section} =" in text
            continue
        assert f"[{section}]" in text, section
        for key in values:
            assert f"{key} =" in text, f"{section}.{key} is not documented"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[gate]\nmin_ess_bulk = nan\n", r"gate\.min_ess_bulk must be a finite number, got nan"),
        ("[gate]\nmax_rhat = inf\n", r"gate\.max_rhat must be a finite number, got inf"),
        ("[decision]\ncost_margin = nan\n", r"decision\.cost_margin must be a finite number"),
        ("[model]\nseed = -1\n", r"model\.seed must be a whole number >= 0, got -1"),
        ("[model]\nsegments = ['tier', 'tier']\n", r"model\.segments names \['tier'\] more than"),
        ("[model]\nsegments = ['Tier; DROP']\n", r"model\.segments: 'Tier; DROP' is not a column"),
        ("[model]\nsegments = 'tier'\n", r"model\.segments must be tuple"),
        ("[experiments]\ninclude = ['']\n", r"experiments\.include has an empty name"),
        ("[experiments]\ninclude = ['a', 'a']\n", r"experiments\.include names \['a'\] more"),
        ("store = ''\n", r"store must be a path string, got ''"),
        ("[model]\ndraws = 0\n", r"model\.draws must be a whole number >= 1, got 0"),
        ("[model]\nchains = 2.0\n", r"model\.chains must be int"),
    ],
)
def test_more_wrong_values_are_named(tmp_path, text, message):
    with pytest.raises(InputError, match=message) as info:
        load_config(write(tmp_path, text))
    assert "cx.toml" in str(info.value)


# ------------------------------------------------------------------------------------------
# [model] outcomes and [[observational]] questions
# ------------------------------------------------------------------------------------------
QUESTION = """
[[observational]]
name = "outreach"
intervention = "proactive_outreach"
confounders = ["tier", "prior_cases"]
"""


def test_outcomes_default_to_all_three_and_a_subset_is_read_and_hashed(tmp_path):
    assert Config().model.outcomes == ("retention", "revenue", "cost_to_serve")
    assert Config().model.money
    cfg = load_config(write(tmp_path, "[model]\noutcomes = ['retention']\n"))
    assert cfg.model.outcomes == ("retention",) and not cfg.model.money
    assert cfg.hash != Config().hash
    # All three, written out, is the default: the hash of stores fitted before the setting stays.
    same = load_config(
        write(tmp_path, "[model]\noutcomes = ['cost_to_serve', 'revenue', 'retention']\n")
    )
    assert same.hash != Config().hash  # a different order is a different setting ...
    full = load_config(
        write(tmp_path, "[model]\noutcomes = ['retention', 'revenue', 'cost_to_serve']\n")
    )
    assert full.hash == Config().hash == "74096a099fbd98d5"  # ... the default one is not


def test_a_question_is_read_with_its_defaults(tmp_path):
    cfg = load_config(write(tmp_path, QUESTION))
    (q,) = cfg.observational
    assert (q.name, q.intervention, q.condition) == ("outreach", "proactive_outreach", "")
    assert q.outcomes == ("retention", "revenue", "cost_to_serve")
    assert q.confounders == ("tier", "prior_cases") and q.segment == "" and q.gformula
    assert Config().observational == ()
    assert cfg.to_dict()["observational"][0]["name"] == "outreach"


def test_causal_settings_enter_the_hash_only_when_a_question_is_declared(tmp_path):
    plain = load_config(write(tmp_path, "[causal]\nbootstrap = 50\n"))
    assert plain.hash == Config().hash
    asked = load_config(write(tmp_path, QUESTION))
    asked_50 = load_config(write(tmp_path, "[causal]\nbootstrap = 50\n" + QUESTION))
    assert len({Config().hash, asked.hash, asked_50.hash}) == 3
    other = load_config(write(tmp_path, QUESTION.replace("prior_cases", "prior_bad_cases")))
    assert other.hash != asked.hash
    # a question's comparison enters the hash only when it is not the default
    same = load_config(write(tmp_path, QUESTION + 'compare_with = "eligible"\n'))
    assert same.hash == asked.hash
    condition = QUESTION.replace(
        'intervention = "proactive_outreach"', 'condition = "resolution=very_ineffective"'
    )
    among = load_config(write(tmp_path, condition + 'compare_with = "other_events"\n'))
    assert among.hash != load_config(write(tmp_path, condition)).hash
    assert among.observational[0].compare_with == "other_events"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[model]\noutcomes = ['churn']\n", r"model\.outcomes: 'churn' is not an outcome"),
        ("[model]\noutcomes = []\n", r"model\.outcomes is empty"),
        ("[model]\noutcomes = ['revenue', 'revenue']\n", r"model\.outcomes names \['revenue'\]"),
        (
            QUESTION + "colour = 'red'\n",
            r"unknown setting observational\[0\] \('outreach'\)\.colour \(allowed: name",
        ),
        (
            QUESTION + "condition = 'resolution=very_effective'\n",
            r"observational 'outreach': give exactly one of intervention and condition",
        ),
        (
            "[[observational]]\nname = 'x'\n",
            r"observational 'x': give exactly one of intervention and condition",
        ),
        (
            QUESTION + "compare_with = 'others'\n",
            r"observational 'outreach': compare_with must be one of \['eligible', 'other_events'\]",
        ),
        (
            QUESTION + "compare_with = 'other_events'\n",
            r"observational 'outreach': compare_with = \"other_events\" compares a condition",
        ),
        (
            QUESTION + "outcomes = ['retention', 'churn']\n",
            r"observational 'outreach': outcomes: 'churn' is not an outcome",
        ),
        (QUESTION + QUESTION, r"observational: name\(s\) \['outreach'\] used by more than one"),
        ("[[observational]]\nintervention = 'x'\n", r"observational\[0\] has no name"),
        ("[[observational]]\nname = 'Out reach'\nintervention = 'x'\n", r"observational\.name"),
        (
            "[[observational]]\nname = 'c'\ncondition = 'very_effective'\n",
            r"observational 'c': condition must be column=value",
        ),
        (QUESTION + "as_of = '2025-13'\n", r"observational 'outreach': as_of must be a month"),
        (QUESTION + "segment = 'Tier'\n", r"observational 'outreach': segment: 'Tier' is not"),
        (QUESTION + "gformula = 'yes'\n", r"observational\[0\] \('outreach'\)\.gformula must"),
        ("observational = {name = 'x'}\n", r"observational must be an array of tables"),
    ],
)
def test_wrong_outcomes_and_questions_are_named(tmp_path, text, message):
    with pytest.raises(InputError, match=message) as info:
        load_config(write(tmp_path, text))
    assert "cx.toml" in str(info.value)


def test_the_documented_question_example_loads():
    import tomllib

    import attribution.config as module

    block = module.__doc__.split("\n    [[observational]]\n", 1)[1].split("\n\n", 1)[0]
    text = "[[observational]]\n" + "\n".join(line.strip() for line in block.splitlines())
    cfg = config_from_dict(tomllib.loads(text))
    (q,) = cfg.observational
    assert (q.name, q.intervention, q.segment, q.gformula) == (
        "outreach",
        "proactive_outreach",
        "",
        True,
    )
