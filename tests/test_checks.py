"""One shape for every check: the Check value, and each kind of check giving one."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from attribution.checks import (
    CHECK_COLUMNS,
    Check,
    check_from_dict,
    checks_frame,
    describe_checks,
    tally,
    worst_verdict,
)
from attribution.errors import InputError
from attribution.srm import srm_check, srm_record
from experiments.decision import (
    BALANCE_COLUMNS,
    GUARDRAIL_COLUMNS,
    balance_check,
    guardrail_checks,
)


def test_a_verdict_outside_pass_warn_fail_is_refused():
    with pytest.raises(ValueError, match="verdict must be one of"):
        Check("balance", "ok", "Balance fine.")


def test_a_check_survives_the_runs_json_with_its_table():
    table = pd.DataFrame({"arm": ["control", "treatment"], "count": [10, 12], "x": [np.nan, 1.5]})
    c = Check("sample ratio", "warn", "SRM check: look.", table, subject="exp_a")
    back = check_from_dict(json.loads(json.dumps(c.to_dict(), allow_nan=False)))
    assert back == c  # name, verdict, sentence, subject
    assert back.table["count"].tolist() == [10, 12]
    assert back.table["x"].isna().tolist() == [True, False]
    assert back.passed  # a warning does not block


def test_lists_of_checks_render_one_way():
    checks = [
        Check("a", "pass", "A is fine."),
        Check("b", "fail", "B failed.", subject="retention"),
        Check("c", "warn", "C: look."),
    ]
    assert worst_verdict(checks) == "fail" and worst_verdict([]) == "pass"
    assert tally(checks) == "3: 1 pass, 1 warn, 1 fail" and tally([]) == "none"
    assert describe_checks(checks, indent="") == [
        "PASS  A is fine.",
        "FAIL  B failed.",
        "WARN  C: look.",
    ]
    frame = checks_frame(checks)
    assert list(frame.columns) == CHECK_COLUMNS and frame["subject"].tolist() == [
        "",
        "retention",
        "",
    ]
    assert [c.passed for c in checks] == [True, False, True]


def test_the_srm_check_fails_on_an_alarm_and_names_its_arms():
    ok = srm_check([5000, 5100]).as_check(["control", "treatment"])
    bad = srm_check([5000, 5400]).as_check(["control", "treatment"])
    assert (ok.verdict, bad.verdict) == ("pass", "fail")
    assert bad.table["arm"].tolist() == ["control", "treatment"]
    assert bad.table["count"].tolist() == [5000, 5400]
    assert "mismatch" in bad.sentence and bad.sentence == srm_check([5000, 5400]).describe()
    # one serialisation of the SRM check, used by the readout, decide and the assignment record
    record = srm_record(srm_check([5000, 5400]), ["control", "treatment"])
    assert record["counts"] == {"control": 5000, "treatment": 5400} and record["checked"]
    assert srm_record(None, ["control", "treatment"])["checked"] is False
    with pytest.raises(InputError, match="arms must name the 2 arms"):
        srm_check([5000, 5400]).to_dict(["control"])


def test_guardrails_warn_when_unclear_or_not_measured_and_fail_when_failed():
    rows = [
        ("treatment", "csat", -0.01, -0.05, 0.03, -0.1, "pass", "within tolerance"),
        ("treatment", "cost_to_serve", 1.0, -1.0, 3.0, 2.0, "unclear", "interval spans margin"),
        ("arm_b", "csat", None, None, None, -0.1, "not measured", "no ratings"),
        ("arm_b", "cost_to_serve", 5.0, 4.0, 6.0, 2.0, "fail", "costs more"),
    ]
    checks = guardrail_checks(pd.DataFrame(rows, columns=GUARDRAIL_COLUMNS))
    assert [c.verdict for c in checks] == ["pass", "warn", "warn", "fail"]
    assert [c.subject for c in checks] == ["treatment", "treatment", "arm_b", "arm_b"]
    assert checks[2].sentence == "Guardrail csat (arm_b): not measured. no ratings"


def test_balance_warns_only_when_a_level_is_flagged():
    rows = [("treatment", "tier", "gold", 0.3, 0.31, 0.02, False)]
    fine = pd.DataFrame(rows, columns=BALANCE_COLUMNS)
    off = fine.assign(smd=0.25, flagged=True)
    assert balance_check(fine).verdict == "pass" and balance_check(off).verdict == "warn"
    assert "largest tier=gold: +0.250" in balance_check(off).sentence
    empty = balance_check(pd.DataFrame(columns=BALANCE_COLUMNS))
    assert empty.verdict == "pass" and "no segment columns" in empty.sentence
