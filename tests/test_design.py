"""Control-group design maths, pinned to published reference values and checked by properties."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, stats
from statsmodels.stats.power import NormalIndPower

from attribution.errors import InputError
from attribution.settings import IntervalSetting
from experiments.design import (
    DesignWarning,
    adjust_alpha,
    assurance,
    cluster_sample_size,
    design_effect,
    expected_test_roll_profit,
    heavy_tail_sample_sizes,
    mde_per_thousand,
    means_mde,
    means_power,
    means_sample_size,
    n_comparisons,
    profit_maximizing_test_size,
    proportions_mde,
    proportions_power,
    proportions_sample_size,
    schoenfeld_events,
    srm_check,
    variance_factor,
    weeks_to_readout,
)

FEW = settings(max_examples=40, deadline=None)

shares = st.floats(0.1, 0.9)
alphas = st.floats(0.01, 0.10)
powers = st.floats(0.6, 0.95)
effects = st.floats(0.05, 1.0)
baselines = st.floats(0.05, 0.85)
lifts = st.floats(0.01, 0.1)


# ---------------------------------------------------------------------------------------------
# Published reference values


def test_means_size_is_392_44_per_arm_like_statsmodels():
    size = means_sample_size(1.0, 0.2, alpha=0.05, power=0.8)
    reference = NormalIndPower().solve_power(effect_size=0.2, alpha=0.05, power=0.8)
    assert round(size.n_control_exact, 2) == 392.44
    assert size.n_control_exact == pytest.approx(reference, rel=1e-6)
    assert (size.n_control, size.n_treatment, size.n_total) == (393, 393, 786)


@FEW
@given(effect=effects, share=shares, alpha=alphas, n_control=st.floats(5, 5000))
def test_means_power_equals_statsmodels_for_any_split(effect, share, alpha, n_control):
    ratio = (1.0 - share) / share
    reference = NormalIndPower().power(effect, nobs1=n_control, alpha=alpha, ratio=ratio)
    ours = means_power(1.0, effect, n_control / share, control_share=share, alpha=alpha)
    assert ours == pytest.approx(reference, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("share", "alpha", "power"), [(0.5, 0.01, 0.9), (0.2, 0.05, 0.8)])
def test_means_size_equals_statsmodels_solve_power(share, alpha, power):
    size = means_sample_size(30.0, 3.0, control_share=share, alpha=alpha, power=power)
    reference = NormalIndPower().solve_power(
        effect_size=0.1, alpha=alpha, power=power, ratio=(1 - share) / share
    )
    assert size.n_control_exact == pytest.approx(reference, rel=1e-5)


def test_two_proportions_10_vs_12_need_3841_per_arm():
    size = proportions_sample_size(0.10, 0.02, alpha=0.05, power=0.8)
    assert (size.n_control, size.n_treatment, size.n_total) == (3841, 3841, 7682)
    # textbook pooled-variance closed form, computed here independently
    z_a, z_b = stats.norm.ppf(0.975), stats.norm.ppf(0.8)
    closed = (
        z_a * math.sqrt(2 * 0.11 * 0.89) + z_b * math.sqrt(0.10 * 0.90 + 0.12 * 0.88)
    ) ** 2 / 0.02**2
    assert round(closed, 1) == 3840.8
    assert size.n_control_exact == pytest.approx(closed, abs=0.05)


def test_continuity_correction_gives_fleiss_3940_per_arm():
    size = proportions_sample_size(0.10, 0.02, continuity=True)
    # Fleiss: n/4 (1 + sqrt(1 + 4 / (n d)))^2 = 3940.2 unrounded; rounded up, 3941
    assert round(size.n_control_exact, 1) == 3940.2
    assert size.n_control == 3941
    plain = proportions_sample_size(0.10, 0.02).n_control_exact
    fleiss = plain / 4 * (1 + math.sqrt(1 + 4 / (plain * 0.02))) ** 2
    assert size.n_control_exact == pytest.approx(fleiss, rel=1e-6)


def test_unequal_split_proportions_match_fleiss_tytun_ury():
    # control share 0.2: r = n_treatment / n_control = 4, pbar = (p1 + r p2) / (1 + r)
    p1, p2, r = 0.80, 0.82, 4.0
    pbar = (p1 + r * p2) / (1 + r)
    z_a, z_b = stats.norm.ppf(0.975), stats.norm.ppf(0.8)
    n_c = (
        z_a * math.sqrt(pbar * (1 - pbar) * (1 + 1 / r))
        + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2) / r)
    ) ** 2 / 0.02**2
    n_cc = n_c / 4 * (1 + math.sqrt(1 + 2 * (r + 1) / (n_c * r * 0.02))) ** 2
    plain = proportions_sample_size(p1, 0.02, control_share=0.2)
    corrected = proportions_sample_size(p1, 0.02, control_share=0.2, continuity=True)
    assert plain.n_control_exact == pytest.approx(n_c, rel=1e-5)
    assert plain.n_treatment_exact == pytest.approx(r * n_c, rel=1e-5)
    assert corrected.n_control_exact == pytest.approx(n_cc, rel=1e-5)


def test_design_effect_icc_015_cluster_30_is_5_35():
    assert design_effect(0.15, 30) == pytest.approx(5.35, abs=1e-12)
    # unequal sizes: 1 + 0.1 x (19 + 20 x 0.25) = 3.4
    assert design_effect(0.1, 20, cv=0.5) == pytest.approx(3.4, abs=1e-12)


def test_schoenfeld_needs_630_5_events_for_hr_0_8():
    design = schoenfeld_events(0.8, alpha=0.05, power=0.8, events_per_week=50)
    assert round(design.events_exact, 1) == 630.5
    assert design.events == 631
    assert design.weeks == pytest.approx(design.events_exact / 50)
    # unequal allocation needs more events: 1 / (0.2 x 0.8) against 1 / (0.5 x 0.5)
    skewed = schoenfeld_events(0.8, treated_share=0.8).events_exact
    assert skewed == pytest.approx(design.events_exact * 0.25 / 0.16)
    assert schoenfeld_events(0.8).weeks is None


def test_srm_5000_vs_5100_at_50_50_has_p_0_3197_and_no_alarm():
    check = srm_check([5000, 5100])
    assert round(check.p_value, 4) == 0.3197
    assert check.chi2 == pytest.approx(2 * 50**2 / 5050)
    assert not check.alarm


def test_srm_alarms_below_p_0_001_and_respects_designed_shares():
    assert srm_check([5000, 5400]).alarm  # chi2 = 15.4, p = 9e-5
    assert not srm_check([5000, 5300]).alarm  # p = 0.003: suspicious, not an alarm
    exact = srm_check([1000, 9000], [0.1, 0.9])
    assert exact.p_value == pytest.approx(1.0)
    assert srm_check([1000, 9000]).alarm
    assert "mismatch" in srm_check([5000, 5400]).text


# ---------------------------------------------------------------------------------------------
# Splits, variance reduction, several tests, clusters, time


def test_unequal_split_grows_total_by_the_variance_factor():
    even = means_sample_size(120.0, 5.0)
    holdout = means_sample_size(120.0, 5.0, control_share=0.1)
    factor = (1 / 0.1 + 1 / 0.9) / 4
    assert holdout.n_total_exact == pytest.approx(even.n_total_exact * factor, rel=1e-9)
    assert holdout.n_control_exact == pytest.approx(0.1 * holdout.n_total_exact)
    assert holdout.n_control < holdout.n_treatment


def test_cuped_r2_shrinks_sample_size_by_one_minus_r2():
    assert variance_factor(0.3) == pytest.approx(0.7)
    base = means_sample_size(120.0, 5.0).n_total_exact
    assert means_sample_size(120.0, 5.0, r2=0.3).n_total_exact == pytest.approx(0.7 * base)
    base_p = proportions_sample_size(0.8, 0.02).n_total_exact
    reduced = proportions_sample_size(0.8, 0.02, r2=0.5).n_total_exact
    assert reduced == pytest.approx(0.5 * base_p)


def test_bonferroni_and_holm_size_at_alpha_over_m():
    assert n_comparisons(3, 2) == 4
    assert adjust_alpha(0.05, 4) == pytest.approx(0.0125)
    assert adjust_alpha(0.05, 4, "holm") == adjust_alpha(0.05, 4, "bonferroni")
    strict = means_sample_size(1.0, 0.2, alpha=adjust_alpha(0.05, 4)).n_control_exact
    z = stats.norm.ppf(1 - 0.0125 / 2) + stats.norm.ppf(0.8)
    assert strict == pytest.approx(2 * z**2 / 0.04, rel=1e-4)


def test_cluster_size_inflates_each_arm_and_counts_clusters():
    base = means_sample_size(1.0, 0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        design = cluster_sample_size(base, 0.15, 30)
    assert design.n_control == math.ceil(base.n_control_exact * 5.35)  # 2,100
    assert design.clusters_control == math.ceil(design.n_control / 30)
    assert design.n_total == design.n_control + design.n_treatment


def test_cluster_size_warns_with_fewer_than_30_clusters_per_arm():
    base = means_sample_size(1.0, 0.5)
    with pytest.warns(DesignWarning, match="fewer than 30"):
        design = cluster_sample_size(base, 0.05, 20)
    assert design.clusters_control < 30


def test_weeks_to_readout_is_enrolment_plus_horizon():
    timeline = weeks_to_readout(7682, 1000, 12)
    assert timeline.enrolment_weeks == pytest.approx(7.682)
    assert timeline.readout_weeks == pytest.approx(19.682)


# ---------------------------------------------------------------------------------------------
# Heavy tails


@pytest.fixture
def spend() -> np.ndarray:
    rng = np.random.default_rng(7)
    return np.where(rng.random(20_000) < 0.3, 0.0, rng.lognormal(3.0, 1.5, 20_000))


def test_heavy_tail_table_reports_n_and_capping_bias(spend):
    table = heavy_tail_sample_sizes(spend, mde=5.0, cap_quantile=0.99).set_index("metric")
    raw, capped, logged = table.loc["raw mean"], table.loc["capped mean"], table.loc["log1p mean"]
    assert raw["effect"] == pytest.approx(5.0)
    assert raw["n_total"] == means_sample_size(spend.std(ddof=1), 5.0).n_total
    cap = np.quantile(spend, 0.99)
    assert capped["cap"] == pytest.approx(cap)
    assert capped["bias"] == pytest.approx(np.minimum(spend, cap).mean() - spend.mean())
    assert capped["bias"] < 0
    assert capped["n_total"] < raw["n_total"]
    assert math.isnan(logged["bias"])
    assert logged["sd"] == pytest.approx(np.log1p(spend).std(ddof=1))


def test_lower_cap_trades_more_bias_for_fewer_customers(spend):
    loose = heavy_tail_sample_sizes(spend, 5.0, cap_quantile=0.999).set_index("metric")
    tight = heavy_tail_sample_sizes(spend, 5.0, cap_quantile=0.95).set_index("metric")
    assert tight.loc["capped mean", "bias"] < loose.loc["capped mean", "bias"]
    assert tight.loc["capped mean", "n_total"] < loose.loc["capped mean", "n_total"]


# ---------------------------------------------------------------------------------------------
# Money


def test_mde_in_money_per_thousand_customers():
    assert mde_per_thousand(0.02, 400.0) == pytest.approx(8000.0)


@pytest.mark.parametrize(
    ("population", "outcome_sd", "prior_sd"), [(100_000, 0.1, 0.05), (5_000, 2.0, 0.3)]
)
def test_test_and_roll_size_maximises_expected_profit(population, outcome_sd, prior_sd):
    size = profit_maximizing_test_size(population, outcome_sd, prior_sd)
    best = optimize.minimize_scalar(
        lambda n: -expected_test_roll_profit(n, population, outcome_sd, 0.7, prior_sd),
        bounds=(1.0, population / 2),
        method="bounded",
        options={"xatol": 1e-6},
    )
    assert size.n_per_arm_exact == pytest.approx(best.x, rel=1e-4)
    assert size.n_rollout == population - 2 * size.n_per_arm


def test_test_and_roll_size_grows_like_square_root_of_population():
    small = profit_maximizing_test_size(10_000, 1.0, 1.0).n_per_arm_exact
    large = profit_maximizing_test_size(1_000_000, 1.0, 1.0).n_per_arm_exact
    # n* = sqrt(N/4 + 9/16) - 3/4 when s = sigma
    assert small == pytest.approx(math.sqrt(10_000 / 4 + 9 / 16) - 0.75)
    assert large / small == pytest.approx(10.0, rel=0.02)


def test_assurance_matches_its_closed_form_and_is_reproducible():
    se = 120.0 * math.sqrt(2 / 9000)
    z = stats.norm.ppf(0.95)
    exact = stats.norm.cdf((5.0 - z * se) / math.sqrt(5.0**2 + se**2))
    result = assurance(5.0, 5.0, 120.0, 9000, 9000, n_sims=40_000, seed=3)
    assert abs(result.probability - exact) < 4 * result.mc_se
    assert assurance(5.0, 5.0, 120.0, 9000, 9000, seed=11) == assurance(
        5.0, 5.0, 120.0, 9000, 9000, seed=np.random.default_rng(11)
    )


def test_assurance_with_a_point_prior_is_one_sided_power_at_the_interval_level():
    se = 120.0 * math.sqrt(2 / 9000)
    z = stats.norm.ppf(0.975)
    exact = 1 - stats.norm.cdf(z - 5.0 / se)
    result = assurance(
        5.0, 0.0, 120.0, 9000, 9000, interval=IntervalSetting(width=0.95), n_sims=40_000
    )
    assert abs(result.probability - exact) < 4 * result.mc_se


# ---------------------------------------------------------------------------------------------
# Properties


@FEW
@given(baseline=baselines, lift=lifts, share=shares, n=st.floats(100, 1e6), k=st.floats(1.1, 4))
def test_power_rises_with_n(baseline, lift, share, n, k):
    assert (
        proportions_power(baseline, lift, n, control_share=share)
        < proportions_power(baseline, lift, n * k, control_share=share)
        or proportions_power(baseline, lift, n, control_share=share) > 1 - 1e-12
    )
    assert (
        means_power(1.0, lift, n, control_share=share)
        < means_power(1.0, lift, n * k, control_share=share)
        or means_power(1.0, lift, n, control_share=share) > 1 - 1e-12
    )


@FEW
@given(
    baseline=baselines, lift=lifts, share=shares, start=st.floats(0.5, 0.95), k=st.floats(1.05, 2)
)
def test_power_rises_with_effect(baseline, lift, share, start, k):
    # From designs with at least 50% power upwards: with an unequal split the pooled-variance
    # test is slightly biased for effects it can barely see (power dips under alpha there).
    n = proportions_sample_size(baseline, lift, control_share=share, power=start).n_total_exact
    low = proportions_power(baseline, lift, n, control_share=share)
    high = proportions_power(baseline, min(lift * k, 0.99 - baseline), n, control_share=share)
    assert high > low or low > 1 - 1e-12
    assert (
        means_power(2.0, lift * k, n, control_share=share)
        > means_power(2.0, lift, n, control_share=share)
        or means_power(2.0, lift, n, control_share=share) > 1 - 1e-12
    )


def test_unequal_split_pooled_test_is_biased_only_for_effects_it_cannot_see():
    # documented limitation of the pooled z-test: power below alpha at tiny effects, 1:7 split
    assert proportions_power(0.125, 0.015625, 100.0, control_share=0.125) < 0.05


@FEW
@given(baseline=baselines, lift=lifts, share=shares, alpha=alphas, power=powers, cc=st.booleans())
def test_solving_proportions_for_n_gives_back_the_target_power(
    baseline, lift, share, alpha, power, cc
):
    size = proportions_sample_size(
        baseline, lift, control_share=share, alpha=alpha, power=power, continuity=cc
    )
    kwargs = {"control_share": share, "alpha": alpha, "continuity": cc}
    assert proportions_power(baseline, lift, size.n_total_exact, **kwargs) == pytest.approx(
        power, abs=1e-9
    )
    mde = proportions_mde(baseline, size.n_total_exact, power=power, **kwargs)
    assert mde == pytest.approx(lift, rel=1e-6)
    assert size.n_control >= share * size.n_total_exact
    assert size.n_treatment >= (1 - share) * size.n_total_exact


@FEW
@given(effect=effects, share=shares, alpha=alphas, power=powers, r2=st.floats(0.0, 0.9))
def test_solving_means_for_n_gives_back_power_and_mde(effect, share, alpha, power, r2):
    kwargs = {"control_share": share, "alpha": alpha, "r2": r2}
    size = means_sample_size(50.0, 50.0 * effect, power=power, **kwargs)
    achieved = means_power(50.0, 50.0 * effect, size.n_total_exact, **kwargs)
    assert achieved == pytest.approx(power, abs=1e-9)
    assert means_power(50.0, 50.0 * effect, size.n_total, **kwargs) >= power
    mde = means_mde(50.0, size.n_total_exact, power=power, **kwargs)
    assert mde == pytest.approx(50.0 * effect, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# Bad settings


@pytest.mark.parametrize(
    ("call", "setting", "value"),
    [
        (lambda: proportions_sample_size(0.0, 0.02), "baseline", "0.0"),
        (lambda: proportions_sample_size(1.2, 0.02), "baseline", "1.2"),
        (lambda: proportions_sample_size(0.1, 0.0), "mde", "0.0"),
        (lambda: proportions_sample_size(0.1, -0.01), "mde", "-0.01"),
        (lambda: proportions_sample_size(0.9, 0.2), "mde", "0.2"),
        (lambda: proportions_sample_size(0.1, 0.02, control_share=1.0), "control_share", "1.0"),
        (lambda: means_sample_size(1.0, 0.2, control_share=0.0), "control_share", "0.0"),
        (lambda: means_sample_size(1.0, 0.2, power=0.03), "power", "0.03"),
        (lambda: means_sample_size(1.0, 0.2, power=1.0), "power", "1.0"),
        (lambda: means_sample_size(1.0, 0.2, alpha=0.0), "alpha", "0.0"),
        (lambda: means_sample_size(0.0, 0.2), "sd", "0.0"),
        (lambda: means_sample_size(1.0, float("nan")), "mde", "nan"),
        (lambda: means_sample_size(1.0, 0.2, r2=1.0), "r2", "1.0"),
        (lambda: means_power(1.0, 0.2, 0), "n_total", "0"),
        (lambda: proportions_mde(0.1, 2.0), "n_total", "2.0"),
        (lambda: adjust_alpha(0.05, 0), "n_tests", "0"),
        (lambda: adjust_alpha(0.05, 3, "sidak"), "method", "sidak"),
        (lambda: design_effect(1.5, 30), "icc", "1.5"),
        (lambda: design_effect(0.1, 0.5), "cluster_size", "0.5"),
        (lambda: schoenfeld_events(1.0), "hazard_ratio", "1.0"),
        (lambda: schoenfeld_events(-0.8), "hazard_ratio", "-0.8"),
        (lambda: weeks_to_readout(1000, 0, 4), "eligible_per_week", "0"),
        (lambda: srm_check([5000, 5100], [0.5, 0.6]), "expected_shares", "0.6"),
        (lambda: srm_check([5000, -1]), "counts", "-1"),
        (
            lambda: heavy_tail_sample_sizes(np.array([1.0, 2.0, 3.0]), 1.0, cap_quantile=1.0),
            "cap_quantile",
            "1.0",
        ),
        (lambda: heavy_tail_sample_sizes(np.array([1.0, np.nan]), 1.0), "values", "non-finite"),
        (lambda: profit_maximizing_test_size(1000, 0.0, 1.0), "outcome_sd", "0.0"),
        (lambda: assurance(1.0, -1.0, 1.0, 10, 10), "prior_sd", "-1.0"),
    ],
)
def test_bad_settings_raise_input_error_naming_setting_and_value(call, setting, value):
    with pytest.raises(InputError) as caught:
        call()
    message = str(caught.value)
    assert setting in message
    assert value in message
