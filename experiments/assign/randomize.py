"""Customers to arms: Bernoulli by hash, or exact shares inside strata, optionally re-randomized
until the arms balance (:func:`assign`, giving an :class:`Assignment`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from attribution.errors import InputError
from attribution.jsonready import json_ready
from attribution.srm import SRMCheck, srm_check
from attribution.validation import finite as _finite
from attribution.validation import open_unit as _open_unit
from experiments.assign.balance import (
    Mahalanobis,
    balance_report,
    coded_levels,
    design_matrix,
    empty_balance,
)
from experiments.assign.hashing import checked_salt, hash_unit
from experiments.assign.record import design_record
from experiments.assign.rules import CONTROL, setting_names


@dataclass(frozen=True)
class Assignment:
    """Who is in which arm, how it was drawn, and whether it came out balanced.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per eligible customer, sorted by ``customer_id``: ``customer_id``, ``arm``,
        ``stratum`` (``"tier=gold|region=north"``, or None without strata) and ``u`` (the hash
        unit under ``salt_used``).
    salt_used : str
        The salt that produced the arms (``salt`` or ``salt#i`` after re-randomization).
    attempts : int
        Assignments drawn, 1 without re-randomization.
    design : dict
        The JSON-ready design record (see :func:`assign`).
    balance : pandas.DataFrame
        :func:`balance_report` over the covariates (empty without covariates).
    srm : SRMCheck
        Sample-ratio-mismatch check of the arm counts against the intended shares.
    mahalanobis : float or None
        Largest Mahalanobis distance of a treatment arm from control over the covariates (None
        when it cannot be computed: no covariates, missing values, no variation).
    threshold : float or None
        Acceptance threshold of the re-randomization (None without it).
    """

    frame: pd.DataFrame
    salt_used: str
    attempts: int
    design: dict
    balance: pd.DataFrame
    srm: SRMCheck
    mahalanobis: float | None = None
    threshold: float | None = None

    @property
    def counts(self) -> dict[str, int]:
        """Customers per arm, in arm order."""
        return dict(self.design["counts"])

    def summary(self) -> pd.DataFrame:
        """One row per arm: ``arm``, ``n``, ``share`` (observed) and ``intended`` share."""
        counts = self.counts
        total = sum(counts.values())
        allocation = self.design["allocation"]
        return pd.DataFrame(
            {
                "arm": list(counts),
                "n": list(counts.values()),
                "share": [n / total for n in counts.values()],
                "intended": [allocation[a] for a in counts],
            }
        )

    def describe(self) -> str:
        """Plain words for the terminal: arms, strata, re-randomization, balance, SRM."""
        d = self.design
        total = sum(self.counts.values())
        salt = f"salt {d['salt']!r}"
        if self.salt_used != d["salt"]:
            salt += f" (accepted {self.salt_used!r}, attempt {self.attempts})"
        strata = d["strata"]
        how = (
            f"stratified by {', '.join(strata['columns'])} ({len(strata['counts'])} strata)"
            if strata
            else "unstratified (Bernoulli by hash)"
        )
        cluster = d.get("cluster")
        if cluster:
            how = how.replace("unstratified (Bernoulli by hash)", "complete randomization") + (
                f", whole clusters by {cluster['column']} ({cluster['clusters']:,} clusters, "
                f"{cluster['mean_size']:,.1f} customers each on average)"
            )
        lines = [f"Assigned {total:,} customers with {salt}, {how}."]
        width = max(len(a) for a in self.counts)
        for arm, n in self.counts.items():
            if cluster:  # the shares hold for clusters; customers follow their clusters' sizes
                k, share = cluster["counts"][arm], cluster["counts"][arm] / cluster["clusters"]
                lines.append(
                    f"  {arm:<{width}} {n:>10,} customers in {k:,} clusters ({share:.1%} of "
                    f"clusters; intended {d['allocation'][arm]:.1%})"
                )
                continue
            lines.append(
                f"  {arm:<{width}} {n:>10,} ({n / total:.1%}; intended {d['allocation'][arm]:.1%})"
            )
        rr = d["rerandomization"]
        if rr:
            lines.append(
                f"Re-randomization: Mahalanobis distance {rr['mahalanobis']:.3f} < "
                f"{rr['threshold']:.3f} (chi-square({rr['k']}) quantile at p = {rr['p']:g}), "
                f"accepted at attempt {self.attempts}."
            )
        if len(self.balance):
            flagged = int(self.balance["flagged"].sum())
            smd = self.balance["smd"].abs()
            worst = self.balance.loc[smd.idxmax()] if smd.notna().any() else None
            text = f"Balance: {flagged} of {len(self.balance)} covariate rows flagged"
            text += f" (|smd| > {d['balance']['threshold']:g})"
            if worst is not None:
                level = worst["level"]
                name = worst["covariate"] + (f"={level}" if level is not None else "")
                text += f"; largest |smd| {abs(worst['smd']):.3f} ({name}, {worst['arm']})"
            lines.append(text + ".")
        srm = self.srm.describe()
        lines.append(srm.replace("SRM check:", "SRM check on clusters:", 1) if cluster else srm)
        m = d.get("monitoring")
        if m:
            looks = ", ".join(
                f"month {mo} (P >= {t:.4f})"
                for mo, t in zip(m["look_months"], m["thresholds"], strict=True)
            )
            lines.append(
                f"Monitored: decided only at {m['looks']} look(s) over {m['horizon_months']} "
                f"months, {m['spending']} alpha spending; roll out at {looks}; false roll-outs "
                f"over all looks kept at {m['false_rollout']:.0%}."
            )
        lines.append(f"Assignment hash (sha256): {d['assignment_hash']}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready summary: counts, salt, re-randomization, balance rows, SRM and the record."""
        return json_ready(
            {
                "salt_used": self.salt_used,
                "attempts": self.attempts,
                "counts": self.counts,
                "mahalanobis": self.mahalanobis,
                "threshold": self.threshold,
                "srm": self.srm.to_dict(list(self.counts)),
                "balance": self.balance.to_dict(orient="records"),
                "design": self.design,
            }
        )


# --------------------------------------------------------------------------------------------
# Assignment


def assign(
    eligible: pd.DataFrame,
    salt: str,
    *,
    control_share: float = 0.5,
    arms: Sequence[str] = (CONTROL, "treatment"),
    shares: Sequence[float] | None = None,
    strata: Sequence[str] = (),
    covariates: Sequence[str] = (),
    rerandomize_p: float | None = None,
    max_tries: int = 1000,
    cluster: str | None = None,
) -> Assignment:
    """Assign eligible customers to arms from a salted hash of their ids.

    The rules (Bernoulli by hash, stratified, re-randomized) are in the module docstring.

    Parameters
    ----------
    eligible : pandas.DataFrame
        One row per eligible customer: a ``customer_id`` column (text; integers are turned into
        text) plus any strata and covariate columns.
    salt : str
        Non-empty salt. Record it: the salt and the ids give back the arms.
    control_share : float
        Share of customers in control, in (0, 1). With two arms the other arm gets the rest; with
        more, the rest is split equally. Ignored when ``shares`` is given.
    arms : sequence of str
        Arm names, ``"control"`` first, no duplicates.
    shares : sequence of float, optional
        One share per arm (> 0, summing to 1), in the order of ``arms``.
    strata : sequence of str
        Columns to stratify by (a comma-separated string is accepted); empty: unstratified.
    covariates : sequence of str
        Columns to check balance on; numeric columns as they are, other columns as categories.
    rerandomize_p : float, optional
        Re-randomize until the Mahalanobis distance is below the chi-square quantile at this
        probability (e.g. 0.1 accepts the best-balanced 10% of assignments). Needs covariates.
    max_tries : int
        Salts to try when re-randomizing, >= 1.
    cluster : str, optional
        A column of clusters (branch, team, store) to randomize whole: the hash is of the
        cluster's label, every customer takes their cluster's arm, strata (when given) must be
        constant within a cluster, and the sample-ratio check counts clusters. The readout then
        models the cluster as a level (:mod:`attribution.uplift`).

    Returns
    -------
    Assignment
        Its ``design`` record holds ``inputs`` (settings, ``n_eligible``, eligible file and its
        sha256 when known), ``algorithm`` (hash name and the rules as text), ``salt``,
        ``salt_used``, ``attempts``, ``arms``, ``allocation`` ({arm: share}), ``counts``,
        ``strata`` (columns and counts per stratum and arm), ``rerandomization``, ``balance``,
        ``srm``, ``assignment_hash``, ``created_at`` (UTC) and ``version``.

    Raises
    ------
    InputError
        A setting out of range, arms without control first or with duplicates, shares that do
        not sum to 1, no ``customer_id`` column, a missing or duplicate customer id (the row is
        named, counting data rows from 1), an unknown strata or covariate column, an empty
        frame, an empty salt, or no accepted assignment within ``max_tries``.

    Examples
    --------
    >>> eligible = pd.DataFrame({"customer_id": [f"C{i}" for i in range(1000)]})
    >>> result = assign(eligible, "q3-outreach", control_share=0.2)
    >>> result.counts["control"], result.srm.alarm
    (210, False)
    """
    return assign_frame(
        eligible,
        salt,
        control_share=control_share,
        arms=arms,
        shares=shares,
        strata=strata,
        covariates=covariates,
        rerandomize_p=rerandomize_p,
        max_tries=max_tries,
        cluster=cluster,
    )


def assign_frame(
    eligible: pd.DataFrame,
    salt: str,
    *,
    control_share: float,
    arms: Sequence[str],
    shares: Sequence[float] | None,
    strata: Sequence[str],
    covariates: Sequence[str],
    rerandomize_p: float | None,
    max_tries: int,
    label: str = "eligible",
    source: tuple[str, str] | None = None,
    cluster: str | None = None,
) -> Assignment:
    """:func:`assign` on a frame of eligible customers (also used by
    :func:`experiments.assign.write.assign_from_file`): the whole assignment."""
    salt = checked_salt(salt)
    arm_names, arm_shares = _arms_and_shares(control_share, arms, shares)
    strata = setting_names("strata", strata)
    covariates = setting_names("covariates", covariates)
    p = None if rerandomize_p is None else _open_unit("rerandomize_p", rerandomize_p)
    if isinstance(max_tries, bool) or int(max_tries) != max_tries or max_tries < 1:
        raise InputError(f"max_tries must be an integer >= 1, got {max_tries!r}")
    if p is not None and not covariates:
        raise InputError(f"rerandomize_p={rerandomize_p!r} needs covariates to balance on")
    if not isinstance(eligible, pd.DataFrame):
        raise InputError(f"{label} must be a pandas DataFrame, got {type(eligible).__name__}")
    ids = customer_ids(eligible, label)
    cluster_cols = setting_names("cluster", [] if cluster is None else [cluster])
    for setting, cols in (
        ("strata", strata),
        ("covariates", covariates),
        ("cluster", cluster_cols),
    ):
        for col in cols:
            if col not in eligible.columns:
                raise InputError(
                    f"{setting}: column {col!r} is not in {label}; columns: {list(eligible)}"
                )
    codes, labels = _strata(eligible, strata)
    units = _clusters(eligible, cluster_cols[0], codes, label) if cluster_cols else None
    X, names = design_matrix(eligible, covariates)
    metric = Mahalanobis(X, names, label) if covariates else None
    threshold = None
    if p is not None:
        assert metric is not None
        metric.require(covariates)
        threshold = float(stats.chi2.ppf(p, metric.k))

    best = math.inf
    for attempt in range(int(max_tries) if p is not None else 1):
        salt_used = salt if attempt == 0 else f"{salt}#{attempt}"
        if units is None:
            u = hash_unit(ids, salt_used)
            arm_idx = _draw(ids, u, arm_shares, codes, _offsets(labels, codes, salt_used))
        else:
            arm_idx, u = units.draw(arm_shares, salt_used, labels)
        distance = metric.distance(arm_idx, len(arm_names)) if metric else None
        if threshold is None or (distance is not None and distance < threshold):
            break
        best = min(best, distance if distance is not None else math.inf)
    else:
        raise InputError(
            f"rerandomize_p={rerandomize_p!r}: none of the {max_tries} assignments tried "
            f"(salts {salt!r}, {salt + '#1'!r}, ...) had a Mahalanobis distance below "
            f"{threshold:.4g} (smallest {best:.4g}); raise max_tries or rerandomize_p, or use "
            "fewer covariates"
        )
    arm_labels = np.asarray(arm_names, dtype=object)[arm_idx]
    frame = pd.DataFrame(
        {
            "customer_id": ids,
            "arm": arm_labels,
            "stratum": labels if labels is not None else np.full(len(ids), None, dtype=object),
            "u": u,
        }
    )
    order = np.argsort(frame["customer_id"].to_numpy(), kind="stable")
    frame = frame.iloc[order].reset_index(drop=True)
    inner = pd.DataFrame({"arm": arm_labels})
    for col in covariates:
        inner[col] = eligible[col].to_numpy()
    balance = balance_report(inner, covariates) if covariates else empty_balance()
    per_arm = np.bincount(arm_idx, minlength=len(arm_names))
    counts = {a: int(n) for a, n in zip(arm_names, per_arm, strict=True)}
    cluster_record = None
    if units is None:
        srm = srm_check(list(counts.values()), list(arm_shares))
    else:
        cluster_counts = units.counts(arm_idx, arm_names)
        srm = srm_check(list(cluster_counts.values()), list(arm_shares))
        cluster_record = {
            "column": cluster_cols[0],
            "clusters": len(units.labels),
            "counts": cluster_counts,
            "mean_size": len(ids) / len(units.labels),
        }
    record = design_record(
        salt=salt,
        salt_used=salt_used,
        attempts=attempt + 1,
        control_share=control_share,
        arms=arm_names,
        shares=arm_shares,
        strata=strata,
        covariates=covariates,
        rerandomize_p=p,
        max_tries=int(max_tries),
        n_eligible=len(ids),
        source=source,
        counts=counts,
        frame=frame,
        threshold=threshold,
        k=metric.k if metric else None,
        mahalanobis=distance,
        balance=balance,
        srm=srm,
        cluster=cluster_record,
    )
    return Assignment(
        frame=frame,
        salt_used=salt_used,
        attempts=attempt + 1,
        design=record,
        balance=balance,
        srm=srm,
        mahalanobis=distance,
        threshold=threshold,
    )


def _arms_and_shares(
    control_share: float, arms: Sequence[str], shares: Sequence[float] | None
) -> tuple[tuple[str, ...], tuple[float, ...]]:
    c = _open_unit("control_share", control_share)
    if isinstance(arms, str):
        arms = [a.strip() for a in arms.split(",")]
    names = list(arms)
    if len(names) < 2:
        raise InputError(f"arms must name at least two arms, control first; got {names!r}")
    for name in names:
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise InputError(
                f"arms: arm names must be non-empty text without spaces around, got {name!r}"
            )
    if names[0] != CONTROL:
        raise InputError(f"arms must start with {CONTROL!r}, got {names!r}")
    dupes = sorted({a for a in names if names.count(a) > 1})
    if dupes:
        raise InputError(f"arms: duplicate arm names {dupes} in {names!r}")
    if shares is None:
        rest = (1.0 - c) / (len(names) - 1)
        values = [c] + [rest] * (len(names) - 1)
    else:
        values = [_finite("shares", s) for s in shares]
        if len(values) != len(names):
            raise InputError(
                f"shares must give one share per arm ({len(names)}: {names}), got {list(shares)}"
            )
        if any(v <= 0.0 or v >= 1.0 for v in values):
            raise InputError(f"shares must each be in (0, 1), got {list(shares)}")
        if not math.isclose(sum(values), 1.0, abs_tol=1e-9):
            raise InputError(f"shares must sum to 1, got {list(shares)} (sum {sum(values):.12g})")
    return tuple(names), tuple(float(v) for v in values)


def customer_ids(eligible: pd.DataFrame, label: str) -> np.ndarray:
    """The customer ids of ``eligible`` as text, refused when missing, empty or repeated
    (``label`` names the frame or file in the message)."""
    if "customer_id" not in eligible.columns:
        raise InputError(f"{label}: no customer_id column; columns: {list(eligible.columns)}")
    if len(eligible) == 0:
        raise InputError(f"{label}: no eligible customers (the frame is empty)")
    raw = eligible["customer_id"]
    null = raw.isna().to_numpy()
    values = raw.to_numpy(dtype=object)
    out = np.empty(len(values), dtype=object)
    missing = []
    for i, v in enumerate(values):
        if isinstance(v, str):
            out[i] = v
            if not v.strip():
                missing.append(i)
        elif null[i]:
            missing.append(i)
        elif isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_):
            out[i] = str(v)
        else:
            raise InputError(
                f"{label} row {i + 1}: customer_id must be text or a whole number, got {v!r}"
            )
    if missing:
        rows = ", ".join(str(i + 1) for i in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise InputError(f"{label}: customer_id is missing in row(s) {rows}{more}")
    dup = pd.Series(out).duplicated(keep=False).to_numpy()
    if dup.any():
        where = pd.Series(np.flatnonzero(dup) + 1, index=out[dup])
        shown = []
        for cid, rows in list(where.groupby(level=0, sort=False))[:5]:
            shown.append(f"{cid!r} in rows {', '.join(str(r) for r in rows)}")
        n_ids = len(set(out[dup]))
        more = f" (and {n_ids - 5} more ids)" if n_ids > 5 else ""
        raise InputError(f"{label}: duplicate customer_id: {'; '.join(shown)}{more}")
    return out


def _strata(
    eligible: pd.DataFrame, strata: list[str]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Integer stratum code per row and the row's label, or (None, None) without strata."""
    if not strata:
        return None, None
    combined = np.zeros(len(eligible), dtype=np.int64)
    per_column = []
    for col in strata:
        codes, levels = coded_levels(eligible[col])
        per_column.append((codes, levels))
        combined = combined * len(levels) + codes
        _, combined = np.unique(combined, return_inverse=True)  # keep the codes small
    first = np.unique(combined, return_index=True)[1]
    labels = np.array(
        [
            "|".join(
                f"{col}={levels[codes[i]]}"
                for col, (codes, levels) in zip(strata, per_column, strict=True)
            )
            for i in first
        ],
        dtype=object,
    )
    return combined.astype(np.int64), labels[combined]


#: The stratum label of an unstratified cluster assignment (its leftover unit's offset).
ALL_CLUSTERS = "(all clusters)"


@dataclass(frozen=True)
class _Units:
    """The clusters of a cluster-randomized assignment: labels, each row's cluster, each
    cluster's stratum code (or None)."""

    labels: np.ndarray
    row: np.ndarray
    codes: np.ndarray

    def draw(
        self, shares: tuple[float, ...], salt: str, row_labels: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Arm index and hash unit per row: the rule applied to the clusters, then spread."""
        u = hash_unit(self.labels, salt)
        stratum_labels = (
            np.full(len(self.labels), ALL_CLUSTERS, dtype=object)
            if row_labels is None
            else _first(row_labels, self.row)
        )
        arm = _draw(self.labels, u, shares, self.codes, _offsets(stratum_labels, self.codes, salt))
        return arm[self.row], u[self.row]

    def counts(self, arm_idx: np.ndarray, arms: tuple[str, ...]) -> dict[str, int]:
        """Clusters per arm."""
        per_cluster = np.zeros(len(self.labels), dtype=np.int64)
        per_cluster[self.row] = arm_idx
        n = np.bincount(per_cluster, minlength=len(arms))
        return {a: int(k) for a, k in zip(arms, n, strict=True)}


def _first(values: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Each cluster's value of a per-row array (the value of its first row)."""
    first = np.zeros(row.max() + 1, dtype=np.int64)
    first[row[::-1]] = np.arange(len(row))[::-1]
    return values[first]


def _clusters(eligible: pd.DataFrame, column: str, codes: np.ndarray | None, label: str) -> _Units:
    """The clusters of ``column``: refused when a value is missing or, with strata, when a
    cluster spans several strata (the row and the cluster are named)."""
    raw = eligible[column]
    missing = np.flatnonzero(raw.isna().to_numpy())
    if len(missing):
        rows = ", ".join(str(i + 1) for i in missing[:5])
        raise InputError(f"{label}: cluster column {column!r} is missing in row(s) {rows}")
    text = raw.astype(str).to_numpy(dtype=object)
    labels, row = np.unique(text, return_inverse=True)
    if len(labels) < 2:
        raise InputError(
            f"{label}: cluster column {column!r} has {len(labels)} cluster(s); a cluster-"
            "randomized test needs at least two per arm"
        )
    # unstratified: the clusters are one stratum, so their counts per arm are exact (complete
    # randomization): with tens of units a Bernoulli draw leaves arms far from the design's
    # shares (60 clusters split 43 / 17 about once in a thousand tests: an SRM alarm).
    cluster_codes = np.zeros(len(labels), dtype=np.int64)
    if codes is not None:
        cluster_codes = _first(codes, row)
        spans = np.flatnonzero(cluster_codes[row] != codes)
        if len(spans):
            i = spans[0]
            raise InputError(
                f"{label} row {i + 1}: cluster {text[i]!r} spans several strata; a cluster "
                "is assigned whole, so stratify by columns that are constant within a cluster"
            )
        _, cluster_codes = np.unique(cluster_codes, return_inverse=True)
    return _Units(labels=labels.astype(object), row=row, codes=cluster_codes)


def _allocate(n: int, shares: tuple[float, ...], offset: float) -> np.ndarray:
    """Counts per arm summing to ``n``, each arm's ``s_j n`` in expectation.

    Every arm gets ``floor(s_j n)``; the leftover units go one each to arms picked by systematic
    sampling on the remainders ``r_j = s_j n - floor(s_j n)`` with the random ``offset`` in
    [0, 1): the points ``offset, offset + 1, ...`` (as many as leftover units) on the cumulative
    remainders. An arm gets its extra unit with probability exactly ``r_j``, so in a stratum of
    one a customer is treated with the design's share (rounding with ties to one arm would give
    a stratum of one to control every time).

    Examples
    --------
    >>> _allocate(10, (0.5, 0.5), 0.3).tolist(), _allocate(1, (0.5, 0.5), 0.7).tolist()
    ([5, 5], [0, 1])
    """
    exact = np.asarray(shares, dtype=float) * n
    base = np.floor(np.round(exact, 9)).astype(np.int64)
    extra = int(n - base.sum())
    if extra > 0:
        cum = np.cumsum(np.clip(np.round(exact - base, 9), 0.0, None))
        cum[-1] = max(cum[-1], extra)  # the remainders sum to ``extra`` up to rounding
        picks = np.searchsorted(cum, offset + np.arange(extra), side="right")
        np.add.at(base, np.minimum(picks, len(base) - 1), 1)
    return base


def _offsets(labels: np.ndarray | None, codes: np.ndarray | None, salt: str) -> np.ndarray | None:
    """Each stratum's offset for :func:`_allocate`: the hash unit of its label under the salt
    ``salt + "#leftover"`` (independent of every customer's own hash unit)."""
    if codes is None or labels is None:
        return None
    first = np.unique(codes, return_index=True)[1]
    return hash_unit(labels[first].astype(str), f"{salt}#leftover")


def _draw(
    ids: np.ndarray,
    u: np.ndarray,
    shares: tuple[float, ...],
    codes: np.ndarray | None,
    offsets: np.ndarray | None = None,
) -> np.ndarray:
    """Arm index per row (0 = control) for hash units ``u``; with strata (``codes``), exact
    counts per stratum from :func:`_allocate` with the stratum's offset."""
    m = len(shares)
    if codes is None:
        cum = np.cumsum(shares)
        cum[-1] = 1.0
        return np.minimum(np.searchsorted(cum, u, side="right"), m - 1)
    order = np.lexsort((u, codes))
    cs, us = codes[order], u[order]
    if np.any((cs[1:] == cs[:-1]) & (us[1:] == us[:-1])):  # equal u in a stratum: break by id
        order = np.lexsort((ids, u, codes))
        cs = codes[order]
    sizes = np.bincount(codes)
    bounds = np.empty((len(sizes), m), dtype=np.int64)
    for s, size in enumerate(sizes):
        bounds[s] = np.cumsum(_allocate(int(size), shares, float(offsets[s])))
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    position = np.arange(len(cs)) - starts[cs]
    sorted_arm = (bounds[cs] <= position[:, None]).sum(axis=1)
    out = np.empty(len(codes), dtype=np.int64)
    out[order] = sorted_arm
    return out
