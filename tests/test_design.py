"""Control-group design maths, pinned to published reference values and checked by properties."""

from __future__ import annotations

import json
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
    holdout_value,
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
    value_sized_holdout,
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
    assert "mismatch" in srm_check([5000, 5400]).describe()


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


# ---------------------------------------------------------------------------------------------
# Holdout sized by value (value of information)


def _net_grid(population, prior_mean, prior_sd, outcome_sd, n_control, n_treatment):
    """Net value of information from the formulas written out again, for brute-force checks."""
    nc = np.asarray(n_control, dtype=float)
    nt = np.asarray(n_treatment, dtype=float)
    tau = np.sqrt(prior_sd**4 / (prior_sd**2 + outcome_sd**2 * (1 / nc + 1 / nt)))
    z = prior_mean / tau
    after = prior_mean * stats.norm.cdf(z) + tau * stats.norm.pdf(z)
    evsi = (population - nc - nt) * (after - max(prior_mean, 0.0))
    return evsi - nc * max(prior_mean, 0.0) - nt * max(-prior_mean, 0.0)


@pytest.mark.parametrize("prior_mean", [-3.0, -0.5, 0.0, 0.5, 3.0])
def test_evsi_is_non_negative_and_grows_with_the_test_at_fixed_share(prior_mean):
    sizes = np.unique(np.geomspace(10, 5_000, 40).astype(int))
    values = [holdout_value(1e6, prior_mean, 5.0, 100.0, n, 3 * n) for n in sizes]
    evsi = np.array([v.evsi for v in values])
    gain = np.array([v.gain_per_customer for v in values])
    assert np.all(evsi >= 0)
    assert np.all(np.diff(gain) > 0)  # each remaining customer's decision gets better
    assert np.all(np.diff(evsi) > 0)  # and, while the test is small, so does the total
    assert all(v.tau < 5.0 for v in values)


def test_evsi_falls_once_the_test_eats_the_customers_it_informs():
    small = holdout_value(10_000, 0.0, 5.0, 100.0, 1_000, 1_000)
    huge = holdout_value(10_000, 0.0, 5.0, 100.0, 4_999, 4_999)
    assert huge.gain_per_customer > small.gain_per_customer
    assert huge.evsi < small.evsi


def test_evsi_closed_form_matches_a_monte_carlo_of_the_preposterior():
    population, mu, sigma, s, nc, nt = 100_000, 2.0, 5.0, 100.0, 2_000, 3_000
    value = holdout_value(population, mu, sigma, s, nc, nt)
    rng = np.random.default_rng(11)
    draws = 200_000
    theta = rng.normal(mu, sigma, draws)
    se = s * math.sqrt(1 / nc + 1 / nt)
    observed = rng.normal(theta, se)  # difference of the arm means
    posterior_mean = (mu / sigma**2 + observed / se**2) / (1 / sigma**2 + 1 / se**2)
    treat_after = posterior_mean > 0
    # realised value of testing against deciding now (mu > 0: treat everyone now)
    with_test = nt * theta + (population - nc - nt) * theta * treat_after
    realised = with_test - population * theta
    mc_se = realised.std(ddof=1) / math.sqrt(draws)
    assert abs(realised.mean() - value.net) < 4 * mc_se
    assert mc_se < 0.02 * value.net  # the check has teeth
    # the posterior mean's spread is the preposterior tau
    assert posterior_mean.std() == pytest.approx(value.tau, rel=0.01)
    gain = np.maximum(posterior_mean, 0).mean() - mu
    assert gain == pytest.approx(value.gain_per_customer, abs=4 * posterior_mean.std() / 447)


@pytest.mark.parametrize(
    ("population", "prior_mean", "prior_sd", "outcome_sd"),
    [(1_500, 1.0, 3.0, 20.0), (1_500, -0.5, 2.0, 30.0), (800, 0.0, 1.0, 10.0)],
)
@pytest.mark.parametrize("control_share", [None, 0.5, 0.3])
def test_value_sized_holdout_is_the_brute_force_maximum(
    population, prior_mean, prior_sd, outcome_sd, control_share
):
    if control_share is None:
        nc, nt = np.meshgrid(np.arange(1, population), np.arange(1, population), indexing="ij")
        ok = nc + nt < population
        nc, nt = nc[ok], nt[ok]
    else:
        totals = np.arange(2, population, dtype=float)
        nc = np.clip(np.floor(control_share * totals + 0.5), 1, totals - 1)
        nt = totals - nc
    net = _net_grid(population, prior_mean, prior_sd, outcome_sd, nc, nt)
    best = int(np.argmax(net))
    size = value_sized_holdout(
        population, prior_mean, prior_sd, outcome_sd, control_share=control_share
    )
    assert (size.n_control, size.n_treatment) == (nc[best], nt[best])
    assert size.net == pytest.approx(net[best], rel=1e-12)
    assert size.n_total == size.n_control + size.n_treatment
    # the optimum is on the curve and nothing on the curve beats it
    curve = size.curve
    assert list(curve.columns) == ["n_total", "n_control", "n_treatment", "evsi", "cost", "net"]
    assert curve["net"].max() == pytest.approx(size.net, rel=1e-12)
    row = curve[curve["n_total"] == size.n_total].iloc[0]
    assert (row["n_control"], row["n_treatment"]) == (size.n_control, size.n_treatment)
    assert curve["n_total"].is_monotonic_increasing and curve["n_total"].is_unique
    assert np.allclose(curve["net"], curve["evsi"] - curve["cost"])


def test_unequal_arms_put_fewer_customers_in_the_arm_the_prior_disfavours():
    favoured = value_sized_holdout(100_000, 2.0, 5.0, 100.0)
    assert favoured.n_control < favoured.n_treatment  # control forgoes value: keep it small
    disfavoured = value_sized_holdout(100_000, -2.0, 5.0, 100.0)
    assert disfavoured.n_treatment < disfavoured.n_control
    assert (disfavoured.n_control, disfavoured.n_treatment) == (
        favoured.n_treatment,
        favoured.n_control,
    )
    assert favoured.value.cost_control == pytest.approx(2.0 * favoured.n_control)
    assert disfavoured.value.cost_treated == pytest.approx(2.0 * disfavoured.n_treatment)


def test_a_confident_prior_recommends_no_test_and_says_decide_now():
    # Not monotone on the way: as the prior tightens, a test must be larger to flip the
    # decision (sd 5 -> 3), until no test is worth its cost and the size drops to 0.
    sizes = [value_sized_holdout(100_000, 2.0, sd, 100.0).n_total for sd in (5.0, 3.0, 1.0, 1e-3)]
    assert sizes[1] > sizes[0] > 0
    assert sizes[2] == sizes[3] == 0
    now = value_sized_holdout(100_000, 2.0, 0.01, 100.0)
    assert now.value is None and not now.worth_testing and now.net == 0.0
    assert (now.n_control, now.n_treatment) == (0, 0)
    assert (now.curve["net"] <= 0).all()
    assert "decide now: roll out" in now.describe()
    against = value_sized_holdout(100_000, -2.0, 0.01, 100.0)
    assert "do not roll out" in against.describe()


def test_symmetric_case_matches_feit_and_berman_test_and_roll():
    # Feit & Berman's arms each have a Normal(mu, sigma) prior: their difference has sd
    # sqrt(2) sigma, and with prior mean 0 the two models are the same decision problem.
    population, s, sigma = 100_000, 0.1, 0.05
    reference = profit_maximizing_test_size(population, s, sigma)
    for share in (0.5, None):
        size = value_sized_holdout(population, 0.0, math.sqrt(2) * sigma, s, control_share=share)
        assert size.n_control == size.n_treatment
        assert abs(size.n_control - reference.n_per_arm_exact) < 1
    # the expected profit per customer of test & roll minus mu is our net value per customer
    for n in (100, 313, 2_000):
        ours = holdout_value(population, 0.0, math.sqrt(2) * sigma, s, n, n).net / population
        theirs = expected_test_roll_profit(n, population, s, 0.7, sigma) - 0.7
        assert ours == pytest.approx(theirs, rel=1e-10)


def test_holdout_results_describe_themselves_and_are_json_ready():
    size = value_sized_holdout(100_000, 2.0, 5.0, 100.0, control_share=0.25)
    text = size.describe()
    value = size.value
    assert text.startswith(
        f"A holdout of {size.n_control:,} customers ({size.n_treatment:,} treated) buys "
        f"information worth {value.evsi:,.2f} against a cost of {value.cost:,.2f}: net "
        f"{value.net:,.2f}."
    )
    data = json.loads(json.dumps(size.to_dict()))
    assert data["n_control"] == size.n_control and data["control_share"] == 0.25
    assert data["value"]["net"] == pytest.approx(value.net)
    assert len(data["curve"]) == len(size.curve)
    assert json.loads(json.dumps(value.to_dict()))["cost"] == pytest.approx(value.cost)


@pytest.mark.parametrize(
    ("call", "setting", "value"),
    [
        (lambda: holdout_value(0, 1.0, 1.0, 1.0, 1, 1), "population", "0"),
        (lambda: holdout_value(100, 1.0, 0.0, 1.0, 1, 1), "prior_sd", "0.0"),
        (lambda: holdout_value(100, 1.0, 1.0, -2.0, 1, 1), "outcome_sd", "-2.0"),
        (lambda: holdout_value(100, float("nan"), 1.0, 1.0, 1, 1), "prior_mean", "nan"),
        (lambda: holdout_value(100, 1.0, 1.0, 1.0, 0, 5), "n_control", "0"),
        (lambda: holdout_value(100, 1.0, 1.0, 1.0, 5, 2.5), "n_treatment", "2.5"),
        (lambda: holdout_value(100, 1.0, 1.0, 1.0, 50, 50), "population", "100"),
        (lambda: value_sized_holdout(2, 1.0, 1.0, 1.0), "population", "2"),
        (
            lambda: value_sized_holdout(100, 1.0, 1.0, 1.0, control_share=1.0),
            "control_share",
            "1.0",
        ),
        (lambda: value_sized_holdout(100, 1.0, -1.0, 1.0), "prior_sd", "-1.0"),
    ],
)
def test_bad_holdout_settings_raise_input_error_naming_them(call, setting, value):
    with pytest.raises(InputError) as caught:
        call()
    assert setting in str(caught.value)
    assert value in str(caught.value)
