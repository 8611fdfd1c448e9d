"""The design record a finance reviewer files with the experiment: what was assigned, how, and
the rules to reproduce it.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pandas as pd

import attribution
from attribution import store
from attribution.errors import InputError
from attribution.jsonready import json_ready
from attribution.srm import SRMCheck
from experiments.assign.hashing import assignment_hash
from experiments.assign.rules import (
    BERNOULLI_RULE,
    CLUSTER_RULE,
    HASH_ALGORITHM,
    RERANDOMIZATION_RULE,
    SMD_RULE,
    SMD_THRESHOLD,
    STRATIFIED_RULE,
    UNIT_RULE,
)

# --------------------------------------------------------------------------------------------
# The design record and the store


def design_record(
    *,
    salt: str,
    salt_used: str,
    attempts: int,
    control_share: float,
    arms: tuple[str, ...],
    shares: tuple[float, ...],
    strata: list[str],
    covariates: list[str],
    rerandomize_p: float | None,
    max_tries: int,
    n_eligible: int,
    source: tuple[str, str] | None,
    counts: dict[str, int],
    frame: pd.DataFrame,
    threshold: float | None,
    k: int | None,
    mahalanobis: float | None,
    balance: pd.DataFrame,
    srm: SRMCheck,
    cluster: dict | None = None,
) -> dict:
    """The JSON-ready record a finance reviewer files with the experiment."""
    strata_record = None
    if strata:
        table = pd.crosstab(frame["stratum"], frame["arm"]).reindex(
            columns=list(arms), fill_value=0
        )
        strata_record = {
            "columns": list(strata),
            "counts": {str(s): {a: int(n) for a, n in r.items()} for s, r in table.iterrows()},
        }
    flagged = balance[balance["flagged"]] if len(balance) else balance
    smd = balance["smd"].abs() if len(balance) else pd.Series(dtype=float)
    record = {
        "record": "cx experiment design v1",
        "unit": "cluster" if cluster else "customer",
        # clusters without strata: one stratum of all clusters (complete randomization)
        "randomization": "stratified" if strata else ("complete" if cluster else "bernoulli"),
        "cluster": cluster,
        "rerandomized": rerandomize_p is not None,
        "arms": list(arms),
        "allocation": dict(zip(arms, shares, strict=True)),
        "stratify_by": list(strata),
        "inputs": {
            "control_share": float(control_share),
            "arms": list(arms),
            "shares": list(shares),
            "strata": list(strata),
            "covariates": list(covariates),
            "rerandomize_p": rerandomize_p,
            "max_tries": max_tries,
            "cluster": cluster["column"] if cluster else None,
            "eligible_file": source[0] if source else None,
            "eligible_sha256": source[1] if source else None,
            "n_eligible": int(n_eligible),
        },
        "algorithm": {
            "hash": HASH_ALGORITHM,
            "unit": UNIT_RULE,
            "cluster": CLUSTER_RULE if cluster else None,
            "rule": STRATIFIED_RULE if strata or cluster else BERNOULLI_RULE,
            "rerandomization": RERANDOMIZATION_RULE if rerandomize_p is not None else None,
            "balance": SMD_RULE,
            "srm": (
                f"chi-square goodness of fit of {'cluster' if cluster else 'customer'} counts "
                "against allocation, alarm at p < 0.001"
            ),
        },
        "salt": salt,
        "salt_used": salt_used,
        "attempts": int(attempts),
        "counts": counts,
        "strata": strata_record,
        "rerandomization": (
            {"p": rerandomize_p, "k": k, "threshold": threshold, "mahalanobis": mahalanobis}
            if rerandomize_p is not None
            else None
        ),
        "mahalanobis": mahalanobis,
        "balance": {
            "threshold": SMD_THRESHOLD,
            "rows": int(len(balance)),
            "flagged": [
                f"{r.arm}: {r.covariate}" + (f"={r.level}" if r.level is not None else "")
                for r in flagged.itertuples()
            ],
            "max_abs_smd": float(smd.max()) if smd.notna().any() else None,
        },
        "srm": srm.to_dict(list(counts)),
        "assignment_hash": assignment_hash(frame),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "package": "cx-attribution",
        "version": attribution.__version__,
    }
    return json_ready(record)


def start_day(value: date | str | None) -> date:
    """The experiment's start day: today (UTC) by default, else the date given."""
    if value is None:
        return datetime.now(UTC).date()
    if isinstance(value, datetime | pd.Timestamp):
        return date(value.year, value.month, value.day)
    if isinstance(value, date):
        return value
    text = str(value).strip()
    if re.fullmatch(r"\d{4}-\d{1,2}", text):
        return store.parse_period(text)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"started {value!r} is not a month (YYYY-MM) or a date (YYYY-MM-DD)"
        ) from None
