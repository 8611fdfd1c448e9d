"""Assignment: reproducible by salt, stable under row order, balanced, written all or nothing."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest
from conftest import assert_unchanged, snapshot
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import attribution
from attribution import load, store, synth
from attribution.errors import InputError
from experiments.assign import (
    HASH_ALGORITHM,
    MISSING_LEVEL,
    assign,
    assign_from_file,
    assignment_hash,
    balance_report,
    hash_unit,
    store_balance,
    write_assignment,
)
from experiments.design import SRM_ALARM_P, srm_check

FEW = settings(max_examples=40, deadline=None)

customer_ids = st.lists(
    st.text(min_size=1, max_size=12).filter(str.strip), min_size=2, max_size=60, unique=True
)
salts = st.text(min_size=1, max_size=10).filter(str.strip)


def reference_u(customer_id: str, salt: str) -> float:
    """The hash unit written out from the spec, independently of the module."""
    digest = hashlib.sha256((salt + ":" + customer_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def ids(n: int, prefix: str = "C") -> list[str]:
    return [f"{prefix}{i:06d}" for i in range(n)]


def arms_by_id(result) -> dict[str, str]:
    return dict(zip(result.frame["customer_id"], result.frame["arm"], strict=True))


@pytest.fixture
def sim():
    """A simulated store: 3,000 customers, 6 months, experiments starting in month 4."""
    c = store.connect(":memory:")
    synth.simulate(c, 3000, months=6, seed=1)
    yield c
    c.close()


def customers_of(con, where: str = "true") -> pd.DataFrame:
    return con.execute(
        f"SELECT customer_id, tier, region FROM customers WHERE {where} ORDER BY customer_id"
    ).df()


# ---------------------------------------------------------------------------------------------
# The hash


def test_hash_unit_equals_an_independent_hashlib_computation():
    sample = ["C00000001", "42", "ümlaut-ß", "a:b", "x" * 200, *ids(2000)]
    got = hash_unit(sample, "q3:outreach")
    expected = np.array([reference_u(c, "q3:outreach") for c in sample])
    assert np.array_equal(got, expected)  # exact, not approximately
    assert got.min() >= 0.0 and got.max() < 1.0
    assert np.array_equal(hash_unit(pd.Series(sample), "q3:outreach"), got)
    assert "sha256" in HASH_ALGORITHM


def test_hash_unit_is_reproduced_by_the_sql_recipe_in_duckdb():
    con = store.connect(":memory:")
    sample = ["C1", "C00000002", "ümlaut", "id,with,commas"]
    got = hash_unit(sample, "salt")
    sql = "SELECT CAST('0x' || left(sha256(? || ':' || ?), 16) AS UBIGINT) / 18446744073709551616.0"
    from_sql = [con.execute(sql, ["salt", c]).fetchone()[0] for c in sample]
    assert np.array_equal(got, np.array(from_sql))


def test_hash_unit_rejects_non_text_ids_and_empty_salt():
    with pytest.raises(InputError, match=r"customer_ids\[1\].*None"):
        hash_unit(["C1", None], "s")
    with pytest.raises(InputError, match="salt"):
        hash_unit(["C1"], "")


# ---------------------------------------------------------------------------------------------
# Reproducibility (property tests)


@FEW
@given(data=st.data(), ids_=customer_ids, salt=salts, stratified=st.booleans())
def test_same_salt_gives_the_same_arms_in_any_row_order(data, ids_, salt, stratified):
    tiers = data.draw(
        st.lists(st.sampled_from(["gold", "silver", None]), min_size=len(ids_), max_size=len(ids_))
    )
    frame = pd.DataFrame({"customer_id": ids_, "tier": tiers})
    shuffled = frame.iloc[data.draw(st.permutations(range(len(ids_))))]
    strata = ["tier"] if stratified else []
    first = assign(frame, salt, strata=strata)
    again = assign(frame, salt, strata=strata)
    moved = assign(shuffled, salt, strata=strata)
    pd.testing.assert_frame_equal(first.frame, again.frame)
    pd.testing.assert_frame_equal(first.frame, moved.frame)
    assert first.design["assignment_hash"] == moved.design["assignment_hash"]
    assert arms_by_id(first) == arms_by_id(moved)


@FEW
@given(data=st.data(), ids_=customer_ids, salt=salts, share=st.floats(0.05, 0.95))
def test_unstratified_arm_depends_only_on_salt_and_id(data, ids_, salt, share):
    full = assign(pd.DataFrame({"customer_id": ids_}), salt, control_share=share)
    subset = data.draw(st.lists(st.sampled_from(ids_), min_size=1, unique=True))
    part = assign(pd.DataFrame({"customer_id": subset}), salt, control_share=share)
    whole = arms_by_id(full)
    assert all(whole[c] == a for c, a in arms_by_id(part).items())
    for c, a in whole.items():
        assert a == ("control" if reference_u(c, salt) < share else "treatment")


def test_a_different_salt_gives_different_arms():
    frame = pd.DataFrame({"customer_id": ids(4000)})
    a = arms_by_id(assign(frame, "spring"))
    b = arms_by_id(assign(frame, "autumn"))
    agree = np.mean([a[c] == b[c] for c in a])
    # independent fair coins agree half the time: sd = sqrt(0.25 / 4000) = 0.0079
    assert 0.5 - 4.5 * 0.0079 < agree < 0.5 + 4.5 * 0.0079


# ---------------------------------------------------------------------------------------------
# Shares and strata


def test_unstratified_control_share_lands_within_binomial_bounds():
    n, share = 20_000, 0.3
    result = assign(pd.DataFrame({"customer_id": ids(n)}), "bounds", control_share=share)
    lo, hi = stats.binom.ppf(1e-6, n, share), stats.binom.isf(1e-6, n, share)
    assert lo <= result.counts["control"] <= hi
    assert result.counts["control"] + result.counts["treatment"] == n
    assert result.frame["stratum"].isna().all()
    assert result.design["allocation"] == {"control": 0.3, "treatment": 0.7}
    assert result.design["randomization"] == "bernoulli"
    assert not result.srm.alarm and result.srm.p_value > SRM_ALARM_P


@pytest.mark.parametrize("share", [0.5, 0.3])
def test_stratified_counts_are_exact_up_to_one_leftover_unit_in_every_stratum(share):
    sizes = {"gold": 7, "silver": 10, "bronze": 13, "platinum": 1}
    tiers = [t for t, k in sizes.items() for _ in range(k)]
    frame = pd.DataFrame({"customer_id": ids(len(tiers)), "tier": tiers})
    result = assign(frame, "strata", control_share=share, strata=["tier"])
    got = result.frame.assign(tier=result.frame["stratum"].str.removeprefix("tier="))
    control = got[got["arm"] == "control"].groupby("tier").size().to_dict()
    for tier, n in sizes.items():
        exact = share * n
        assert control.get(tier, 0) in {math.floor(round(exact, 9)), math.ceil(round(exact, 9))}
    assert control["silver"] == round(share * 10)  # an exact share of the stratum: no leftover
    # control is the customers with the smallest hash units of their stratum
    for _, group in got.groupby("tier"):
        k = (group["arm"] == "control").sum()
        assert set(group.nsmallest(k, "u")["customer_id"]) == set(
            group.loc[group["arm"] == "control", "customer_id"]
        )
    record = result.design["strata"]
    assert record["columns"] == ["tier"]
    assert record["counts"]["tier=bronze"] == {
        "control": control["bronze"],
        "treatment": 13 - control["bronze"],
    }


@pytest.mark.parametrize(
    ("arms", "shares"),
    [(("control", "treatment"), (0.5, 0.5)), (("control", "treatment"), (0.3, 0.7)),
     (("control", "email", "call"), (0.2, 0.3, 0.5))],
)  # fmt: skip
def test_every_customers_chance_of_each_arm_is_the_design_share_in_strata_of_one_and_three(
    arms, shares
):
    """Over 600 salts each customer's arm frequencies match the shares within sampling error,
    in strata of 1, 3 and 10 (a leftover unit given to the first arm would put a stratum of one
    in control every time)."""
    tiers = ["one"] + ["three"] * 3 + ["ten"] * 10
    frame = pd.DataFrame({"customer_id": ids(len(tiers)), "tier": tiers})
    runs_ = 600
    hits = {arm: np.zeros(len(tiers)) for arm in arms}
    for k in range(runs_):
        got = assign(frame, f"salt-{k}", arms=arms, shares=shares, strata=["tier"]).frame
        got = got.set_index("customer_id").loc[frame["customer_id"], "arm"].to_numpy()
        for arm in arms:
            hits[arm] += got == arm
    for arm, p in zip(arms, shares, strict=True):
        # each customer: binomial(600, p), bounds at 1e-6 (Bonferroni over 14 customers x arms)
        lo, hi = stats.binom.ppf(1e-6, runs_, p), stats.binom.isf(1e-6, runs_, p)
        assert ((lo <= hits[arm]) & (hits[arm] <= hi)).all(), (arm, hits[arm].tolist())


def test_many_tiny_strata_keep_the_share_and_the_srm_check_at_its_nominal_rate():
    """The review's case: 600 strata, 2,000 customers, 50/50. Version 1 put 57% in control and
    the SRM check alarmed; now the split is the design's and alarms stay at or below p < 0.001."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"customer_id": ids(2000), "cell": rng.integers(0, 600, 2000)})
    shares, alarms = [], 0
    for k in range(100):
        result = assign(frame, f"tiny-{k}", strata=["cell"])
        shares.append(result.counts["control"] / 2000)
        alarms += result.srm.alarm
    # a stratified split varies less than a binomial one: its mean within binomial bounds of 0.5
    assert abs(np.mean(shares) - 0.5) < 4 * math.sqrt(0.25 / 2000 / 100)
    assert alarms <= stats.binom.isf(1e-4, 100, SRM_ALARM_P)


def test_stratum_labels_join_columns_and_mark_missing_values():
    frame = pd.DataFrame(
        {"customer_id": ["A", "B"], "tier": ["gold", None], "region": ["north", "south"]}
    )
    result = assign(frame, "s", strata=["tier", "region"])
    labels = dict(zip(result.frame["customer_id"], result.frame["stratum"], strict=True))
    assert labels == {"A": "tier=gold|region=north", "B": f"tier={MISSING_LEVEL}|region=south"}


def test_multi_arm_shares_land_within_binomial_bounds_and_strata_are_exact():
    n = 20_000
    arms, shares = ("control", "email", "call"), (0.2, 0.3, 0.5)
    result = assign(pd.DataFrame({"customer_id": ids(n)}), "multi", arms=arms, shares=shares)
    for arm, p in zip(arms, shares, strict=True):
        assert stats.binom.ppf(1e-6, n, p) <= result.counts[arm] <= stats.binom.isf(1e-6, n, p)
    assert result.design["allocation"] == dict(zip(arms, shares, strict=True))
    assert not result.srm.alarm

    default = assign(pd.DataFrame({"customer_id": ids(10)}), "m", control_share=0.4, arms=arms)
    assert default.design["allocation"] == pytest.approx(
        {"control": 0.4, "email": 0.3, "call": 0.3}
    )

    # a stratum of 7: exact 1.4, 2.1, 3.5 -> floors 1, 2, 3 and one leftover unit to one arm;
    # a stratum of 10: exactly 2, 3, 5
    tiers = ["a"] * 7 + ["b"] * 10
    frame = pd.DataFrame({"customer_id": ids(17), "tier": tiers})
    exact = assign(frame, "m", arms=arms, shares=shares, strata="tier").frame
    counts = exact.groupby(["stratum", "arm"]).size().unstack(fill_value=0)
    extra = counts.loc["tier=a", list(arms)].to_numpy() - np.array([1, 2, 3])
    assert sorted(extra.tolist()) == [0, 0, 1]
    assert counts.loc["tier=b", list(arms)].tolist() == [2, 3, 5]


# ---------------------------------------------------------------------------------------------
# Re-randomization


def test_rerandomization_accepts_the_first_salt_below_the_chi_square_threshold():
    rng = np.random.default_rng(7)
    n = 400
    frame = pd.DataFrame(
        {
            "customer_id": ids(n),
            "spend": rng.gamma(2.0, 50.0, n),
            "tenure": rng.normal(3.0, 1.0, n),
            "tier": rng.choice(["bronze", "gold", "silver"], n),
        }
    )
    p = 0.05
    result = assign(frame, "rr", covariates=["spend", "tenure", "tier"], rerandomize_p=p)

    # recompute independently: arms from the hash, M from numpy
    X = np.column_stack(
        [
            frame["spend"],
            frame["tenure"],
            (frame["tier"] == "gold").astype(float),  # "bronze", first in sorted order, dropped
            (frame["tier"] == "silver").astype(float),
        ]
    )
    S_inv = np.linalg.inv(np.cov(X, rowvar=False))
    threshold = stats.chi2.ppf(p, 4)

    def distance(salt: str) -> float:
        treated = np.array([reference_u(c, salt) >= 0.5 for c in frame["customer_id"]])
        d = X[treated].mean(axis=0) - X[~treated].mean(axis=0)
        n_t, n_c = treated.sum(), (~treated).sum()
        return n_t * n_c / n * d @ S_inv @ d

    salts_tried = ["rr"] + [f"rr#{i}" for i in range(1, result.attempts)]
    distances = [distance(s) for s in salts_tried]
    assert result.attempts > 1  # this salt needed re-randomizing
    assert all(m >= threshold for m in distances[:-1])
    assert distances[-1] < threshold
    assert result.salt_used == salts_tried[-1]
    assert result.mahalanobis == pytest.approx(distances[-1], rel=1e-9)
    assert result.threshold == pytest.approx(threshold)
    record = result.design["rerandomization"]
    assert record["k"] == 4 and record["p"] == p
    assert result.design["attempts"] == result.attempts
    assert result.design["salt"] == "rr" and result.design["salt_used"] == result.salt_used
    assert arms_by_id(result) == {
        c: "control" if reference_u(c, result.salt_used) < 0.5 else "treatment"
        for c in frame["customer_id"]
    }


def test_rerandomization_that_never_passes_raises():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"customer_id": ids(200), "x": rng.normal(size=200)})
    with pytest.raises(InputError, match="max_tries"):
        assign(frame, "never", covariates=["x"], rerandomize_p=1e-9, max_tries=3)


# ---------------------------------------------------------------------------------------------
# Balance


def test_balance_report_smd_equals_a_hand_calculation():
    frame = pd.DataFrame(
        {
            "arm": ["control"] * 3 + ["treatment"] * 3,
            "x": [1.0, 2.0, 3.0, 2.0, 4.0, 6.0],
            "kind": ["a", "a", "b", "b", "b", "a"],
        }
    )
    report = balance_report(frame, ["x", "kind"]).set_index("covariate")
    # x: means 2 and 4, variances 1 and 4 -> 2 / sqrt(2.5)
    assert report.loc["x", "mean_control"] == 2.0 and report.loc["x", "mean_arm"] == 4.0
    assert report.loc["x", "smd"] == pytest.approx(2.0 / math.sqrt(2.5))
    assert report.loc["x", "level"] is None
    # kind: level a is dropped; share of b is 1/3 vs 2/3, both variances 1/3
    assert report.loc["kind", "level"] == "b"
    assert report.loc["kind", "smd"] == pytest.approx((1 / 3) / math.sqrt(1 / 3))
    assert report["flagged"].all()
    assert not balance_report(frame, ["kind"], threshold=0.6)["flagged"].any()


def test_balance_report_of_constant_covariate_is_zero():
    frame = pd.DataFrame({"arm": ["control", "control", "treatment", "treatment"], "x": [1] * 4})
    assert balance_report(frame, ["x"])["smd"].tolist() == [0.0]


def test_store_balance_is_small_for_the_simulated_randomized_experiments(sim):
    for experiment in ("exp_recovery_gift", "exp_premium_support"):
        n = dict(
            sim.execute(
                "SELECT arm, count(*) FROM assignments WHERE experiment_id = ? GROUP BY arm",
                [experiment],
            ).fetchall()
        )
        report = store_balance(sim, experiment)
        assert set(report["covariate"]) == {
            "tier",
            "region",
            "channel",
            "tenure_band",
            "pre_revenue",
            "pre_cost",
            "pre_active",
        }
        # an SMD under randomization has sd about sqrt(1/n_c + 1/n_t): allow 4 of them
        bound = 4.0 * math.sqrt(1.0 / n["control"] + 1.0 / n["treatment"])
        assert report["smd"].abs().max() < bound, report


def test_store_balance_pre_revenue_is_the_mean_of_the_three_months_before_start(sim):
    report = store_balance(sim, "exp_recovery_gift", ["pre_revenue", "pre_active"])
    rows = sim.execute(
        "SELECT a.arm, o.customer_id, o.period, o.revenue, o.active FROM assignments a "
        "JOIN outcomes o USING (customer_id) WHERE a.experiment_id = 'exp_recovery_gift'"
    ).df()
    rows["period"] = pd.to_datetime(rows["period"])
    window = rows[(rows["period"] >= "2025-01-01") & (rows["period"] < "2025-04-01")]
    per_customer = window.groupby(["arm", "customer_id"])["revenue"].mean()
    expected = per_customer.groupby("arm").mean()
    got = report.set_index("covariate")
    assert got.loc["pre_revenue", "mean_control"] == pytest.approx(expected["control"])
    assert got.loc["pre_revenue", "mean_arm"] == pytest.approx(expected["treatment"])
    march = rows[rows["period"] == "2025-03-01"]
    active = march.groupby("arm")["active"].mean()
    assert got.loc["pre_active", "mean_control"] == pytest.approx(active["control"])


def test_store_balance_flags_a_confounded_assignment(sim):
    people = customers_of(sim, "tier IN ('gold', 'silver')")
    load.load(
        sim,
        "experiments",
        pd.DataFrame(
            {"experiment_id": ["exp_bad"], "intervention": ["x"], "started": ["2025-04-01"]}
        ),
    )
    arms = np.where(people["tier"] == "gold", "treatment", "control")
    load.load(
        sim,
        "assignments",
        pd.DataFrame(
            {"experiment_id": "exp_bad", "customer_id": people["customer_id"], "arm": arms}
        ),
    )
    report = store_balance(sim, "exp_bad", ["tier"]).set_index("level")
    assert report.loc["silver", "smd"] == -math.inf  # every control customer is silver
    assert report.loc["silver", "flagged"]


def test_store_balance_rejects_unknown_experiment_and_covariate(sim):
    with pytest.raises(InputError, match="exp_nope"):
        store_balance(sim, "exp_nope")
    with pytest.raises(InputError, match="shoe_size"):
        store_balance(sim, "exp_recovery_gift", ["shoe_size"])
    with pytest.raises(InputError, match="tier"):
        store_balance(sim, "exp_recovery_gift", ['tier"; DROP TABLE customers; --'])


# ---------------------------------------------------------------------------------------------
# Writing to the store


def test_write_assignment_writes_the_experiment_and_every_assignment(sim):
    eligible = customers_of(sim, "tier = 'gold'")
    result = assign(eligible, "gold-q3", strata=["region"], covariates=["region"])
    summary = write_assignment(sim, "exp_gold", "gold_gift", result, started="2025-04")

    row = sim.execute(
        "SELECT intervention, started, design, ended FROM experiments WHERE experiment_id = ?",
        ["exp_gold"],
    ).fetchone()
    assert row[0] == "gold_gift" and row[1] == date(2025, 4, 1) and row[3] is None
    stored = json.loads(row[2])
    assert stored == summary["design"]
    assert stored["experiment_id"] == "exp_gold" and stored["started"] == "2025-04-01"

    written = sim.execute(
        "SELECT customer_id, arm, stratum, assigned_at FROM assignments "
        "WHERE experiment_id = 'exp_gold' ORDER BY customer_id"
    ).df()
    assert len(written) == len(eligible) == summary["customers"]
    expected = result.frame[["customer_id", "arm", "stratum"]]
    pd.testing.assert_frame_equal(written[["customer_id", "arm", "stratum"]], expected)
    assert written["assigned_at"].notna().all()
    # the record's hash, recomputed from the stored rows
    lines = sorted(f"{c},{a}" for c, a in zip(written["customer_id"], written["arm"], strict=True))
    digest = hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()
    assert stored["assignment_hash"] == digest == summary["assignment_hash"]
    # SRM from the stored counts against the stored allocation passes
    counts = written["arm"].value_counts()
    check = srm_check([counts["control"], counts["treatment"]], list(stored["allocation"].values()))
    assert not check.alarm and check.p_value > SRM_ALARM_P


def test_write_assignment_with_an_unknown_customer_leaves_the_store_unchanged(sim):
    eligible = pd.concat(
        [customers_of(sim, "tier = 'gold'"), pd.DataFrame({"customer_id": ["ZZ-404"]})]
    )
    result = assign(eligible, "s")
    before = snapshot(sim)
    with pytest.raises(InputError, match=r"1 customer.*ZZ-404"):
        write_assignment(sim, "exp_new", "gift", result)
    assert_unchanged(before, sim)


def test_write_assignment_refuses_an_existing_experiment_id(sim):
    result = assign(customers_of(sim, "tier = 'gold'"), "s")
    before = snapshot(sim)
    with pytest.raises(InputError, match="exp_recovery_gift.*already"):
        write_assignment(sim, "exp_recovery_gift", "gift", result)
    assert_unchanged(before, sim)
    write_assignment(sim, "exp_once", "gift", result)
    after_first = snapshot(sim)
    with pytest.raises(InputError, match="exp_once"):
        write_assignment(sim, "exp_once", "gift", result)
    assert_unchanged(after_first, sim)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"intervention": " "}, "intervention"),
        ({"started": "April"}, "started"),
        ({"experiment_id": ""}, "experiment_id"),
    ],
)
def test_write_assignment_rejects_bad_settings(sim, kwargs, message):
    result = assign(customers_of(sim, "tier = 'gold'"), "s")
    args = {"experiment_id": "exp_x", "intervention": "gift", **kwargs}
    before = snapshot(sim)
    with pytest.raises(InputError, match=message):
        write_assignment(
            sim, args["experiment_id"], args["intervention"], result, started=kwargs.get("started")
        )
    assert_unchanged(before, sim)


def test_write_assignment_refuses_a_frame_changed_after_assign(sim):
    result = assign(customers_of(sim, "tier = 'gold'"), "s")
    result.frame.loc[0, "arm"] = (
        "treatment" if result.frame.loc[0, "arm"] == "control" else "control"
    )
    with pytest.raises(InputError, match="assignment_hash"):
        write_assignment(sim, "exp_x", "gift", result)


def test_design_record_round_trips_as_json_and_names_its_inputs():
    frame = pd.DataFrame({"customer_id": ids(50), "x": np.arange(50.0)})
    result = assign(frame, "record", control_share=0.4, covariates=["x"])
    design = result.design
    assert json.loads(json.dumps(design, allow_nan=False)) == design
    assert json.loads(json.dumps(result.to_dict(), allow_nan=False))["counts"] == result.counts
    assert design["algorithm"]["hash"] == HASH_ALGORITHM
    assert design["inputs"]["control_share"] == 0.4
    assert design["inputs"]["covariates"] == ["x"] and design["inputs"]["n_eligible"] == 50
    assert design["allocation"] == {"control": 0.4, "treatment": 0.6}
    assert design["counts"] == result.counts and sum(result.counts.values()) == 50
    assert design["assignment_hash"] == assignment_hash(result.frame.sample(frac=1, random_state=0))
    assert design["version"] == attribution.__version__
    assert datetime.fromisoformat(design["created_at"]).tzinfo is not None
    table = result.summary()
    assert table["n"].sum() == 50 and table["intended"].tolist() == [0.4, 0.6]
    text = result.describe()
    assert "50 customers" in text and "'record'" in text and "SRM check" in text


# ---------------------------------------------------------------------------------------------
# From a file


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_assign_from_file_reads_assigns_and_writes(sim, tmp_path, suffix):
    people = customers_of(sim, "region = 'north'")
    file = pd.DataFrame({"customer_id": people["customer_id"], "score": np.arange(len(people)) % 7})
    path = tmp_path / f"eligible{suffix}"
    if suffix == ".csv":
        file.to_csv(path, index=False)
    else:
        file.to_parquet(path, index=False)
    result = assign_from_file(
        sim,
        "exp_file",
        "call",
        path,
        "file-salt",
        control_share=0.3,
        strata=["tier"],
        covariates=["score"],
        started=date(2025, 4, 1),
    )
    # the same as assigning the joined frame in memory
    joined = file.merge(people[["customer_id", "tier"]], on="customer_id")
    direct = assign(joined, "file-salt", control_share=0.3, strata=["tier"], covariates=["score"])
    assert arms_by_id(result) == arms_by_id(direct)
    assert result.balance["covariate"].tolist() == ["score"]  # read back as a number
    assert result.design["inputs"]["eligible_file"] == path.name
    assert (
        result.design["inputs"]["eligible_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    )
    stored = sim.execute(
        "SELECT design FROM experiments WHERE experiment_id = 'exp_file'"
    ).fetchone()[0]
    assert json.loads(stored) == result.design
    n = sim.execute("SELECT count(*) FROM assignments WHERE experiment_id = 'exp_file'").fetchone()
    assert n[0] == len(people)


def test_assign_from_file_errors_name_the_file_and_write_nothing(sim, tmp_path):
    before = snapshot(sim)
    gold = customers_of(sim, "tier = 'gold'")["customer_id"].tolist()

    def write(name: str, text: str):
        path = tmp_path / name
        path.write_text(text)
        return path

    cases = [
        (tmp_path / "absent.csv", "absent.csv"),
        (write("empty.csv", ""), "empty.csv"),
        (write("noid.csv", "id\nC1\n"), r"noid.csv: no customer_id column"),
        (write("dupes.csv", f"customer_id\n{gold[0]}\n{gold[1]}\n{gold[0]}\n"), r"rows 1, 3"),
        (write("blank.csv", f"customer_id,x\n{gold[0]},1\n ,2\n"), r"blank.csv.*row\(s\) 2"),
        (write("stranger.csv", f"customer_id\n{gold[0]}\nNOBODY\n"), r"stranger.csv.*NOBODY"),
    ]
    for path, message in cases:
        with pytest.raises(InputError, match=message):
            assign_from_file(sim, "exp_f", "gift", path, "s")
    ok = write("ok.csv", f"customer_id\n{gold[0]}\n{gold[1]}\n")
    with pytest.raises(InputError, match="shoe_size"):
        assign_from_file(sim, "exp_f", "gift", ok, "s", strata=["shoe_size"])
    with pytest.raises(InputError, match="already"):
        assign_from_file(sim, "exp_recovery_gift", "gift", ok, "s")
    assert_unchanged(before, sim)


# ---------------------------------------------------------------------------------------------
# Bad input


GOOD = pd.DataFrame({"customer_id": ["A", "B", "C"], "tier": ["x", "y", "x"]})


@pytest.mark.parametrize(
    ("frame", "kwargs", "message"),
    [
        (GOOD, {"control_share": 0.0}, "control_share"),
        (GOOD, {"control_share": 1.5}, "control_share"),
        (GOOD, {"arms": ("treatment", "control")}, "must start with 'control'"),
        (GOOD, {"arms": ("control", "a", "a")}, "duplicate arm"),
        (GOOD, {"arms": ("control", "a"), "shares": (0.5, 0.4)}, "sum to 1"),
        (GOOD, {"arms": ("control", "a"), "shares": (1.0,)}, "one share per arm"),
        (GOOD.rename(columns={"customer_id": "id"}), {}, "no customer_id column"),
        (pd.DataFrame({"customer_id": ["A", "B", "A"]}), {}, r"'A' in rows 1, 3"),
        (pd.DataFrame({"customer_id": ["A", None]}), {}, r"missing in row\(s\) 2"),
        (pd.DataFrame({"customer_id": ["A", 1.5]}), {}, r"row 2.*1\.5"),
        (GOOD, {"strata": ["region"]}, "strata: column 'region'"),
        (GOOD, {"covariates": ["age"]}, "covariates: column 'age'"),
        (GOOD.iloc[:0], {}, "empty"),
        (GOOD, {"salt": ""}, "salt"),
        (GOOD, {"rerandomize_p": 0.1}, "needs covariates"),
        (GOOD, {"covariates": ["tier"], "rerandomize_p": 0.1, "max_tries": 0}, "max_tries"),
    ],
)
def test_assign_rejects_bad_input_naming_the_setting(frame, kwargs, message):
    kwargs = {"salt": "s", **kwargs}
    salt = kwargs.pop("salt")
    with pytest.raises(InputError, match=message):
        assign(frame, salt, **kwargs)


def test_integer_customer_ids_are_hashed_as_text():
    numeric = assign(pd.DataFrame({"customer_id": [1, 2, 3]}), "s")
    text = assign(pd.DataFrame({"customer_id": ["1", "2", "3"]}), "s")
    pd.testing.assert_frame_equal(numeric.frame, text.frame)


def test_a_re_randomized_test_is_read_out_with_a_note_on_its_conservative_intervals(sim):
    """Re-randomization balances its covariates; a readout that does not adjust for them is
    valid but conservative, and says so (issue 18)."""
    from attribution.config import Config, ModelSettings
    from attribution.readout import preflight

    eligible = customers_of(sim, "tier IN ('gold', 'silver')")
    eligible["score"] = np.arange(len(eligible)) % 7
    result = assign(eligible, "rr", covariates=["region", "score"], rerandomize_p=0.2)
    write_assignment(sim, "exp_rr", "gift", result, started="2025-04")
    by_tier = Config(model=ModelSettings(segments=("tier",)))
    pre = preflight(sim, "exp_rr", config=by_tier)
    (note,) = [n for n in pre.notes if n.startswith("Re-randomized on region, score")]
    assert "does not adjust for region, score" in note and "conservative" in note
    by_region = preflight(sim, "exp_rr", segments=["region"], config=by_tier)
    (note,) = [n for n in by_region.notes if n.startswith("Re-randomized")]
    assert "does not adjust for score," in note
    plain = assign(eligible, "plain", covariates=["region"])
    write_assignment(sim, "exp_plain", "gift", plain, started="2025-04")
    assert not any(n.startswith("Re-randomized") for n in preflight(sim, "exp_plain").notes)


# ---------------------------------------------------------------------------------------------
# Cluster randomization


def _clustered_frame(n_clusters: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 30, n_clusters)
    branch = np.repeat([f"B{i:03d}" for i in range(n_clusters)], sizes)
    region = np.repeat(rng.choice(["north", "south"], n_clusters), sizes)
    return pd.DataFrame({"customer_id": ids(len(branch)), "branch": branch, "region": region})


@pytest.mark.parametrize("strata", [(), ("region",)])
def test_clusters_are_assigned_whole_each_with_the_design_share_and_srm_counts_clusters(strata):
    frame = _clustered_frame()
    runs_ = 400
    treated = pd.Series(0.0, index=sorted(frame["branch"].unique()))
    for k in range(runs_):
        result = assign(frame, f"cl-{k}", control_share=0.3, cluster="branch", strata=strata)
        got = result.frame.merge(frame, on="customer_id")
        per = got.groupby("branch")["arm"].agg(["nunique", "first"])
        assert (per["nunique"] == 1).all()  # every customer takes their cluster's arm
        treated += per["first"] == "treatment"
        record = result.design
        assert record["unit"] == "cluster" and record["cluster"]["column"] == "branch"
        assert sum(record["cluster"]["counts"].values()) == 40
        if not strata:  # complete randomization: exactly the design's share of the clusters
            assert record["cluster"]["counts"] == {"control": 12, "treatment": 28}
            assert record["randomization"] == "complete"
        assert list(result.srm.counts) == list(record["cluster"]["counts"].values())
    lo, hi = stats.binom.ppf(1e-5, runs_, 0.7), stats.binom.isf(1e-5, runs_, 0.7)
    assert ((lo <= treated) & (treated <= hi)).all(), treated.tolist()


def test_the_same_salt_gives_the_same_cluster_arms_and_a_cluster_follows_its_label():
    frame = _clustered_frame()
    a = assign(frame, "same", cluster="branch").frame
    b = assign(frame.sample(frac=1.0, random_state=1), "same", cluster="branch").frame
    pd.testing.assert_frame_equal(a, b)
    # unstratified: complete randomization of the clusters, the half with the smallest hash
    # units of their labels in control (40 clusters: exactly 20 each)
    got = a.merge(frame, on="customer_id").groupby("branch")["arm"].first()
    u = pd.Series(hash_unit(got.index.to_numpy(dtype=object), "same"), index=got.index)
    assert (got[u.sort_values().index[:20]] == "control").all()
    assert (got[u.sort_values().index[20:]] == "treatment").all()


def test_cluster_assignment_errors_name_the_row_and_the_cluster():
    frame = _clustered_frame()
    holes = frame.assign(branch=frame["branch"].where(frame.index != 4))
    with pytest.raises(InputError, match=r"cluster column 'branch' is missing in row\(s\) 5"):
        assign(holes, "s", cluster="branch")
    mixed = frame.copy()
    mixed.loc[mixed.index[1], "region"] = "east" if mixed.loc[0, "region"] != "east" else "west"
    first = mixed.loc[0, "branch"]
    if (mixed["branch"] == first).sum() > 1:
        with pytest.raises(InputError, match=f"row 2: cluster '{first}' spans several strata"):
            assign(mixed, "s", cluster="branch", strata=["region"])
    with pytest.raises(InputError, match="1 cluster"):
        assign(frame.assign(branch="all"), "s", cluster="branch")
    with pytest.raises(InputError, match="cluster: column 'shop' is not in eligible"):
        assign(frame, "s", cluster="shop")
