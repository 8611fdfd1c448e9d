"""Deterministic assignment of customers to experiment arms, its balance, and its design record.

Every customer's arm follows from a salted hash of the customer id, so the same salt gives the
same arms on any machine, in any row order, and another system can reproduce them::

    u(id) = int.from_bytes(sha256((salt + ":" + id).encode("utf-8")).digest()[:8], "big") / 2**64

Reproduction recipe (Python, then SQL in DuckDB's dialect; any SHA-256 gives the same bytes)::

    import hashlib; h = hashlib.sha256(f"{salt}:{customer_id}".encode("utf-8")).digest()
    u = int.from_bytes(h[:8], "big") / 2**64        # first 8 bytes, big-endian, over 2^64
    -- SQL: CAST('0x' || left(sha256(salt || ':' || customer_id), 16) AS UBIGINT) / 2^64

``u`` is a double in [0, 1) (the 64-bit integer rounded to the nearest double; an id whose
integer lies within 2^10 of 2^64, probability 2^-54, rounds to 1.0 and goes to the last arm).

Arms, with shares ``s_0`` (control, always first), ``s_1``, ... summing to 1:

* **unstratified** (Bernoulli by hash): the arm is the first ``j`` with ``u < s_0 + ... + s_j``;
  each customer's arm depends only on the salt and its id, so adding or removing customers never
  moves anyone else.
* **stratified**: within each stratum (the combination of the strata columns' values, labelled
  ``"tier=gold|region=north"``; a missing value is the level ``(missing)``) customers are ordered
  by ``(u, customer_id)``. The stratum's ``n`` is split into counts ``floor(s_j n)`` plus one more
  for the arms with the largest remainders ``s_j n - floor(s_j n)`` until the counts sum to ``n``
  (ties go to the earlier arm, so control is rounded half up); the first ``n_0`` customers in that
  order are control, the next ``n_1`` the second arm, and so on. Counts are exact in every stratum
  and still independent of row order.
* **re-randomized** (Morgan & Rubin 2012, optional): the salts ``salt``, ``salt#1``, ``salt#2``,
  ... are tried in turn and the first assignment accepted whose Mahalanobis distance between the
  covariate means of each treatment arm and control, ``M = (n_t n_c / n) d' S^-1 d`` (``d`` the
  difference in means, ``S`` the covariance of the covariates over all eligible customers,
  ``n = n_t + n_c``), is below the ``rerandomize_p`` quantile of chi-square with ``k`` degrees of
  freedom (``k`` the rank of ``S``). Categorical covariates enter as indicators of every level but
  the first in sorted order. With several treatment arms every arm must pass.

The balance report gives standardized mean differences ``(mean_arm - mean_control) /
sqrt((var_control + var_arm) / 2)`` per covariate (and level), and the sample-ratio-mismatch check
(:func:`experiments.design.srm_check`) compares the arm counts with the intended shares.
:func:`write_assignment` writes the experiment, its assignments and a design record a finance
reviewer can file, in one transaction.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from scipy import stats

import attribution
from attribution import load, store
from attribution.errors import InputError
from attribution.jsonready import json_ready
from attribution.periods import add_months
from attribution.srm import SRMCheck, srm_check
from attribution.validation import finite as _finite
from attribution.validation import open_unit as _open_unit
from attribution.validation import text as text_setting

#: Name and version of the hashing rule, stored in every design record.
HASH_ALGORITHM = "sha256(salt:customer_id)[:8]/2^64 v1"
#: The arm every experiment compares against; always the first arm.
CONTROL = "control"
#: Level that stands for a missing value in strata labels and categorical covariates.
MISSING_LEVEL = "(missing)"
#: Covariates :func:`store_balance` derives from outcomes before the experiment's start.
PRE_COVARIATES = ("pre_revenue", "pre_cost", "pre_active")
#: Months of history before the start that ``pre_revenue`` and ``pre_cost`` average over.
PRE_MONTHS = 3
#: |SMD| above which the balance report flags a covariate.
SMD_THRESHOLD = 0.1

_UNIT_RULE = (
    'u = int.from_bytes(sha256((salt + ":" + customer_id).encode("utf-8")).digest()[:8], '
    '"big") / 2**64'
)
_BERNOULLI_RULE = (
    "arm = the first arm j (control first) with u < s_0 + ... + s_j, s_j the arm shares"
)
_STRATIFIED_RULE = (
    "within each stratum order customers by (u, customer_id); counts per arm floor(s_j n) plus "
    "one for the largest remainders s_j n - floor(s_j n) until they sum to n (ties to the earlier "
    "arm); the first n_0 in that order are control, the next n_1 the second arm, and so on"
)
_RERANDOMIZATION_RULE = (
    'try salts salt, salt + "#1", salt + "#2", ... and accept the first assignment with '
    "M = (n_t n_c / n) d' S^-1 d < chi2.ppf(rerandomize_p, k) for every treatment arm "
    "(d: difference in covariate means from control; S: covariance of the covariates over all "
    "eligible customers, pseudo-inverse; k = rank S; categorical covariates as indicators of all "
    "levels but the first in sorted order) (Morgan & Rubin 2012)"
)
_SMD_RULE = "smd = (mean_arm - mean_control) / sqrt((var_control + var_arm) / 2), var with ddof 1"
_BALANCE_COLUMNS = ["arm", "covariate", "level", "mean_control", "mean_arm", "smd", "flagged"]


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
        lines = [f"Assigned {total:,} customers with {salt}, {how}."]
        width = max(len(a) for a in self.counts)
        for arm, n in self.counts.items():
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
        lines.append(self.srm.describe())
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
# The hash


def hash_unit(customer_ids: Sequence[str] | pd.Series, salt: str) -> np.ndarray:
    """The hash unit ``u`` in [0, 1) of each customer id under ``salt``.

    ``u = int.from_bytes(sha256((salt + ":" + id).encode("utf-8")).digest()[:8], "big") / 2**64``
    (see the module docstring for a recipe in SQL).

    Parameters
    ----------
    customer_ids : sequence of str or pandas.Series
        Customer ids, as text.
    salt : str
        Non-empty salt; a new salt gives an independent draw.

    Returns
    -------
    numpy.ndarray
        One float64 per id, in the given order.

    Examples
    --------
    >>> round(float(hash_unit(["C1"], "s")[0]), 6)
    0.519075
    """
    prefix = (_salt(salt) + ":").encode("utf-8")
    values = customer_ids.tolist() if isinstance(customer_ids, pd.Series) else list(customer_ids)
    sha = hashlib.sha256
    try:
        digest = b"".join(sha(prefix + cid.encode("utf-8")).digest()[:8] for cid in values)
    except (AttributeError, UnicodeEncodeError):
        for i, cid in enumerate(values):
            if not isinstance(cid, str):
                raise InputError(
                    f"customer_ids[{i}]: a customer id must be text, got {cid!r}"
                ) from None
            try:
                cid.encode("utf-8")
            except UnicodeEncodeError:
                raise InputError(f"customer_ids[{i}]: {cid!r} cannot be encoded as UTF-8") from None
        raise
    ints = np.frombuffer(digest, dtype=">u8")
    return ints.astype(np.float64) / 2.0**64


def assignment_hash(frame: pd.DataFrame) -> str:
    """SHA-256 (hex) of the sorted ``"customer_id,arm"`` lines joined by newlines, UTF-8.

    Lines are sorted as strings by code point; there is no trailing newline. It identifies an
    assignment whatever the row order, so a store's assignments can be checked against the
    design record.

    Parameters
    ----------
    frame : pandas.DataFrame
        With ``customer_id`` and ``arm`` columns.

    Returns
    -------
    str

    Examples
    --------
    >>> frame = pd.DataFrame({"customer_id": ["C2", "C1"], "arm": ["control", "treatment"]})
    >>> assignment_hash(frame) == hashlib.sha256(b"C1,treatment\\nC2,control").hexdigest()
    True
    """
    for col in ("customer_id", "arm"):
        if col not in frame.columns:
            raise InputError(f"assignment frame has no {col!r} column; columns: {list(frame)}")
    ids = frame["customer_id"].to_numpy(dtype=object)
    arms = frame["arm"].to_numpy(dtype=object)
    lines = sorted(f"{c},{a}" for c, a in zip(ids, arms, strict=True))
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


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
    return _assign(
        eligible,
        salt,
        control_share=control_share,
        arms=arms,
        shares=shares,
        strata=strata,
        covariates=covariates,
        rerandomize_p=rerandomize_p,
        max_tries=max_tries,
    )


def _assign(
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
) -> Assignment:
    salt = _salt(salt)
    arm_names, arm_shares = _arms_and_shares(control_share, arms, shares)
    strata = _names("strata", strata)
    covariates = _names("covariates", covariates)
    p = None if rerandomize_p is None else _open_unit("rerandomize_p", rerandomize_p)
    if isinstance(max_tries, bool) or int(max_tries) != max_tries or max_tries < 1:
        raise InputError(f"max_tries must be an integer >= 1, got {max_tries!r}")
    if p is not None and not covariates:
        raise InputError(f"rerandomize_p={rerandomize_p!r} needs covariates to balance on")
    if not isinstance(eligible, pd.DataFrame):
        raise InputError(f"{label} must be a pandas DataFrame, got {type(eligible).__name__}")
    ids = _customer_ids(eligible, label)
    for setting, cols in (("strata", strata), ("covariates", covariates)):
        for col in cols:
            if col not in eligible.columns:
                raise InputError(
                    f"{setting}: column {col!r} is not in {label}; columns: {list(eligible)}"
                )
    codes, labels = _strata(eligible, strata)
    X, names = _design_matrix(eligible, covariates)
    metric = _Mahalanobis(X, names, label) if covariates else None
    threshold = None
    if p is not None:
        assert metric is not None
        metric.require(covariates)
        threshold = float(stats.chi2.ppf(p, metric.k))

    best = math.inf
    for attempt in range(int(max_tries) if p is not None else 1):
        salt_used = salt if attempt == 0 else f"{salt}#{attempt}"
        u = hash_unit(ids, salt_used)
        arm_idx = _draw(ids, u, arm_shares, codes)
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
    balance = balance_report(inner, covariates) if covariates else _empty_balance()
    per_arm = np.bincount(arm_idx, minlength=len(arm_names))
    counts = {a: int(n) for a, n in zip(arm_names, per_arm, strict=True)}
    srm = srm_check(list(counts.values()), list(arm_shares))
    record = _design_record(
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


def _salt(salt: str) -> str:
    if not isinstance(salt, str) or not salt.strip():
        raise InputError(f"salt must be non-empty text, got {salt!r}")
    return salt


def _names(setting: str, names: Sequence[str] | str) -> list[str]:
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    out = []
    for name in names:
        if not isinstance(name, str) or not name:
            raise InputError(f"{setting}: column names must be non-empty text, got {name!r}")
        if name in out:
            raise InputError(f"{setting}: column {name!r} is listed twice")
        if name in ("customer_id", "arm"):
            raise InputError(f"{setting}: {name!r} cannot be a stratum or covariate")
        out.append(name)
    return out


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


def _customer_ids(eligible: pd.DataFrame, label: str) -> np.ndarray:
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


def _levels(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Each row's level index into the sorted level texts (a missing value is ``(missing)``)."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    texts = [str(v) for v in uniques]
    if (codes < 0).any():
        codes = np.where(codes < 0, len(texts), codes)
        texts.append(MISSING_LEVEL)
    levels = sorted(set(texts))
    position = {t: i for i, t in enumerate(levels)}
    remap = np.array([position[t] for t in texts], dtype=np.int64)
    return remap[codes], levels


def _strata(
    eligible: pd.DataFrame, strata: list[str]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Integer stratum code per row and the row's label, or (None, None) without strata."""
    if not strata:
        return None, None
    combined = np.zeros(len(eligible), dtype=np.int64)
    per_column = []
    for col in strata:
        codes, levels = _levels(eligible[col])
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


def _allocate(n: int, shares: tuple[float, ...]) -> np.ndarray:
    """Largest-remainder counts per arm summing to ``n``; remainder ties go to the earlier arm."""
    exact = [s * n for s in shares]
    base = [math.floor(round(e, 9)) for e in exact]
    rem = [round(e - b, 9) for e, b in zip(exact, base, strict=True)]
    extra = n - sum(base)
    for j in sorted(range(len(shares)), key=lambda j: (-rem[j], j))[: max(extra, 0)]:
        base[j] += 1
    return np.asarray(base, dtype=np.int64)


def _draw(
    ids: np.ndarray, u: np.ndarray, shares: tuple[float, ...], codes: np.ndarray | None
) -> np.ndarray:
    """Arm index per row (0 = control) for hash units ``u``."""
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
    cache: dict[int, np.ndarray] = {}
    bounds = np.empty((len(sizes), m), dtype=np.int64)
    for s, size in enumerate(sizes):
        if size not in cache:
            cache[size] = np.cumsum(_allocate(int(size), shares))
        bounds[s] = cache[size]
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    position = np.arange(len(cs)) - starts[cs]
    sorted_arm = (bounds[cs] <= position[:, None]).sum(axis=1)
    out = np.empty(len(codes), dtype=np.int64)
    out[order] = sorted_arm
    return out


# --------------------------------------------------------------------------------------------
# Covariates and balance


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def _design_matrix(frame: pd.DataFrame, covariates: list[str]) -> tuple[np.ndarray, list]:
    """Numeric matrix of the covariates (categoricals as indicators of all levels but the first)
    and, per matrix column, its (covariate, level) name (level None for numeric columns)."""
    cols, names = [], []
    for col in covariates:
        series = frame[col]
        if _is_numeric(series):
            cols.append(series.to_numpy(dtype="float64", na_value=np.nan))
            names.append((col, None))
            continue
        codes, levels = _levels(series)
        for i, level in enumerate(levels[1:], start=1):
            cols.append((codes == i).astype(np.float64))
            names.append((col, level))
    X = np.column_stack(cols) if cols else np.empty((len(frame), 0))
    return X, names


class _Mahalanobis:
    """Mahalanobis distance between arm means, with the covariance of all units fixed once."""

    def __init__(self, X: np.ndarray, names: list, label: str):
        self.X = X
        self.names = names
        self.label = label
        self.ok = X.shape[1] > 0 and not np.isnan(X).any() and X.shape[0] > 1
        self.k = 0
        if self.ok:
            S = np.atleast_2d(np.cov(X, rowvar=False))
            self.k = int(np.linalg.matrix_rank(S))
            self.S_inv = np.linalg.pinv(S, hermitian=True)
            self.ok = self.k > 0

    def require(self, covariates: list[str]) -> None:
        if self.X.shape[1] and np.isnan(self.X).any():
            row, col = np.argwhere(np.isnan(self.X))[0]
            raise InputError(
                f"{self.label} row {row + 1}: covariate {self.names[col][0]!r} is missing; "
                "re-randomization needs every numeric covariate value"
            )
        if not self.ok:
            raise InputError(
                f"covariates {covariates}: no variation among the eligible customers, nothing to "
                "re-randomize on"
            )

    def distance(self, arm_idx: np.ndarray, n_arms: int) -> float | None:
        if not self.ok:
            return None
        control = arm_idx == 0
        n_c = int(control.sum())
        worst = 0.0
        for j in range(1, n_arms):
            treated = arm_idx == j
            n_t = int(treated.sum())
            if n_t == 0 or n_c == 0:
                return math.inf
            d = self.X[treated].mean(axis=0) - self.X[control].mean(axis=0)
            worst = max(worst, float(n_t * n_c / (n_t + n_c) * d @ self.S_inv @ d))
        return worst


def balance_report(
    frame: pd.DataFrame,
    covariates: Sequence[str],
    *,
    arm_col: str = "arm",
    control: str = CONTROL,
    threshold: float = SMD_THRESHOLD,
) -> pd.DataFrame:
    """Standardized mean differences of covariates between each arm and control.

    ``smd = (mean_arm - mean_control) / sqrt((var_control + var_arm) / 2)`` with sample variances
    (ddof 1); missing numeric values are left out of that covariate's means and variances. A
    categorical covariate gives one row per level except the first in sorted order, comparing
    the share of customers at that level (a missing value is the level ``(missing)``). When both
    variances are zero, ``smd`` is 0 for equal means and +-inf otherwise.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per customer with the arm column and the covariates.
    covariates : sequence of str
        Covariate columns; numeric (and boolean) columns as numbers, others as categories.
    arm_col : str
        The arm column.
    control : str
        The control arm's name.
    threshold : float
        Flag rows with ``|smd| > threshold``, > 0. Default 0.1, the usual rule of thumb.

    Returns
    -------
    pandas.DataFrame
        Columns ``arm, covariate, level, mean_control, mean_arm, smd, flagged``; one row per
        non-control arm (sorted) and covariate (and level), ``level`` None for numeric columns.

    Examples
    --------
    >>> frame = pd.DataFrame({"arm": ["control"] * 3 + ["treatment"] * 3, "x": [1, 2, 3, 2, 4, 6]})
    >>> round(float(balance_report(frame, ["x"])["smd"].iloc[0]), 4)
    1.2649
    """
    t = _finite("threshold", threshold)
    if t <= 0:
        raise InputError(f"threshold must be > 0, got {threshold!r}")
    covariates = _names("covariates", covariates) if covariates else []
    if arm_col not in frame.columns:
        raise InputError(f"balance: no arm column {arm_col!r}; columns: {list(frame.columns)}")
    for col in covariates:
        if col not in frame.columns:
            raise InputError(
                f"covariates: column {col!r} is not in the frame; columns: {list(frame)}"
            )
    arm = frame[arm_col].astype(object).to_numpy()
    if not (arm == control).any():
        raise InputError(f"balance: no customer in the control arm {control!r}")
    X, names = _design_matrix(frame, covariates)
    rows = []
    treated_arms = sorted((a for a in pd.unique(arm) if a != control and not pd.isna(a)), key=str)
    base = X[arm == control]
    for name in treated_arms:
        other = X[arm == name]
        for j, (cov, level) in enumerate(names):
            xc, xt = _clean(base[:, j]), _clean(other[:, j])
            mc, mt = _mean(xc), _mean(xt)
            vc, vt = _var(xc), _var(xt)
            rows.append((name, cov, level, mc, mt, _smd(mt - mc, vc, vt)))
    out = pd.DataFrame(rows, columns=_BALANCE_COLUMNS[:-1])
    if out.empty:
        return _empty_balance()
    out["level"] = pd.Series([lv for *_, lv in names] * len(treated_arms), dtype=object)
    out["flagged"] = out["smd"].abs() > t
    return out


def _clean(x: np.ndarray) -> np.ndarray:
    return x[~np.isnan(x)]


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else math.nan


def _var(x: np.ndarray) -> float:
    return float(x.var(ddof=1)) if len(x) > 1 else math.nan


def _smd(diff: float, var_c: float, var_t: float) -> float:
    pooled = math.sqrt((var_c + var_t) / 2.0) if not math.isnan(var_c + var_t) else math.nan
    if math.isnan(pooled) or math.isnan(diff):
        return math.nan
    if pooled == 0.0:
        return 0.0 if diff == 0.0 else math.copysign(math.inf, diff)
    return diff / pooled


def _empty_balance() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "arm": pd.Series(dtype=object),
            "covariate": pd.Series(dtype=object),
            "level": pd.Series(dtype=object),
            "mean_control": pd.Series(dtype="float64"),
            "mean_arm": pd.Series(dtype="float64"),
            "smd": pd.Series(dtype="float64"),
            "flagged": pd.Series(dtype=bool),
        }
    )


_STORE_BALANCE_SQL = """
SELECT a.customer_id, a.arm{segment_cols}
FROM assignments a
LEFT JOIN customers c ON c.customer_id = a.customer_id
WHERE a.experiment_id = ?
"""

_PRE_PERIOD_SQL = """
SELECT a.customer_id,
       avg(o.revenue) AS pre_revenue,
       avg(o.cost_to_serve) AS pre_cost,
       max(CASE WHEN o.period = ? THEN CAST(o.active AS DOUBLE) END) AS pre_active
FROM assignments a
LEFT JOIN outcomes o
  ON o.customer_id = a.customer_id AND o.period >= ? AND o.period < ?
WHERE a.experiment_id = ?
GROUP BY a.customer_id
"""


def store_balance(
    con: duckdb.DuckDBPyConnection,
    experiment_id: str,
    covariates: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Balance report of an experiment in the store, on customer segments and pre-period history.

    Covariates are the customers table's segment columns and, when the store has outcomes before
    the experiment's start month, ``pre_revenue`` and ``pre_cost`` (mean monthly revenue and
    cost-to-serve over the up to 3 months before the start that the customer has outcome rows
    for) and ``pre_active`` (1 if active in the month before the start, 0 if not, missing without
    a row).

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        An open store.
    experiment_id : str
        An experiment in the ``experiments`` table with assignments.
    covariates : sequence of str, optional
        Segment columns of customers and/or the pre-period names above. Default: every segment
        column, plus the pre-period covariates when history exists.

    Returns
    -------
    pandas.DataFrame
        As :func:`balance_report`.

    Raises
    ------
    InputError
        Unknown experiment, no assignments, an unknown covariate, or a pre-period covariate
        asked for without outcomes before the start.

    Examples
    --------
    >>> from attribution import synth
    >>> con = store.connect(":memory:")
    >>> _ = synth.simulate(con, 2000, months=6, seed=1)
    >>> report = store_balance(con, "exp_recovery_gift", ["tier", "pre_revenue"])
    >>> sorted(set(report["covariate"]))
    ['pre_revenue', 'tier']
    """
    found = con.execute(
        "SELECT started FROM experiments WHERE experiment_id = ?", [experiment_id]
    ).fetchall()
    row = found[0] if found else None
    if row is None:
        known = [
            r[0] for r in con.execute("SELECT experiment_id FROM experiments ORDER BY 1").fetchall()
        ]
        raise InputError(f"experiment {experiment_id!r} is not in the store; known: {known}")
    start = store.parse_period(row[0])
    first, _ = store.periods(con)
    has_pre = first is not None and first < start
    segments = store.segment_columns(con)
    if covariates is None:
        wanted = segments + (list(PRE_COVARIATES) if has_pre else [])
    else:
        wanted = _names("covariates", covariates)
        for name in wanted:
            if name in PRE_COVARIATES:
                if not has_pre:
                    raise InputError(
                        f"covariate {name!r}: the store has no outcomes before the experiment's "
                        f"start {start:%Y-%m}"
                    )
            elif name not in segments:
                raise InputError(
                    f"covariate {name!r} is not a customers segment column {segments} or one of "
                    f"{list(PRE_COVARIATES)}"
                )
    seg = [c for c in wanted if c in segments]
    seg_sql = "".join(f", c.{store.quote_identifier(c)}" for c in seg)
    frame = con.execute(_STORE_BALANCE_SQL.format(segment_cols=seg_sql), [experiment_id]).df()
    if frame.empty:
        raise InputError(f"experiment {experiment_id!r} has no assignments")
    pre = [c for c in wanted if c in PRE_COVARIATES]
    if pre:
        history = con.execute(
            _PRE_PERIOD_SQL,
            [add_months(start, -1), add_months(start, -PRE_MONTHS), start, experiment_id],
        ).df()
        frame = frame.merge(history, on="customer_id", how="left")
    return balance_report(frame, wanted)


# --------------------------------------------------------------------------------------------
# The design record and the store


def _design_record(
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
        "unit": "customer",
        "randomization": "stratified" if strata else "bernoulli",
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
            "eligible_file": source[0] if source else None,
            "eligible_sha256": source[1] if source else None,
            "n_eligible": int(n_eligible),
        },
        "algorithm": {
            "hash": HASH_ALGORITHM,
            "unit": _UNIT_RULE,
            "rule": _STRATIFIED_RULE if strata else _BERNOULLI_RULE,
            "rerandomization": _RERANDOMIZATION_RULE if rerandomize_p is not None else None,
            "balance": _SMD_RULE,
            "srm": "chi-square goodness of fit of counts against allocation, alarm at p < 0.001",
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


def _started(value: date | str | None) -> date:
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


def _refuse_existing(con: duckdb.DuckDBPyConnection, experiment_id: str) -> None:
    for table in ("experiments", "assignments"):
        n = con.execute(
            f"SELECT count(*) FROM {table} WHERE experiment_id = ?", [experiment_id]
        ).fetchall()[0][0]
        if n:
            raise InputError(
                f"experiment_id {experiment_id!r} is already in the store's {table} table; "
                "choose a new id (an assignment is never overwritten)"
            )


_UNKNOWN_SQL = """
SELECT v.customer_id FROM {view} v
WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.customer_id = v.customer_id)
"""


def _refuse_unknown(con: duckdb.DuckDBPyConnection, view: str, where: str) -> None:
    unknown = con.execute(
        "SELECT count(*), list(customer_id ORDER BY customer_id)[1:5] "
        f"FROM ({_UNKNOWN_SQL.format(view=view)})"
    ).fetchall()[0]
    if unknown[0]:
        raise InputError(
            f"{where}: {unknown[0]} customer(s) are not in the store's customers table, e.g. "
            f"{unknown[1]}; load them first (cx load customers FILE)"
        )


def write_assignment(
    con: duckdb.DuckDBPyConnection,
    experiment_id: str,
    intervention: str,
    assignment: Assignment,
    *,
    started: date | str | None = None,
    source: str | None = None,
) -> dict:
    """Write the experiment row (with its design record) and all its assignments, all or nothing.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A writable store; every customer must be in ``customers``.
    experiment_id : str
        A new experiment id (an existing one is refused, never overwritten).
    intervention : str
        The intervention tested, non-empty.
    assignment : Assignment
        From :func:`assign`.
    started : date or str, optional
        First day of the test: a date, ``"YYYY-MM-DD"`` or ``"YYYY-MM"`` (the first of the
        month). Default: today (UTC).
    source : str, optional
        Name of the eligible file, recorded in the design record when it names none.

    Returns
    -------
    dict
        ``experiment_id``, ``intervention``, ``started``, ``customers``, ``counts``,
        ``salt_used``, ``assignment_hash`` and ``design`` (the record as stored, with
        ``experiment_id``, ``intervention`` and ``started`` added).

    Raises
    ------
    InputError
        An existing experiment id, an empty intervention, a bad ``started``, customers not in the
        store (the first few are named, with the count), or a frame that no longer matches the
        record's assignment hash. Nothing is written.

    Examples
    --------
    >>> from attribution import load
    >>> con = store.connect(":memory:")
    >>> people = pd.DataFrame({"customer_id": ["C1", "C2"], "signup_date": ["2024-01-01"] * 2})
    >>> _ = load.load(con, "customers", people)
    >>> result = assign(people[["customer_id"]], "s")
    >>> write_assignment(con, "exp1", "gift", result, started="2025-04")["customers"]
    2
    """
    eid = text_setting("experiment_id", experiment_id)
    name = text_setting("intervention", intervention)
    day = _started(started)
    frame = assignment.frame
    for col in ("customer_id", "arm", "stratum"):
        if col not in frame.columns:
            raise InputError(f"assignment frame has no {col!r} column; columns: {list(frame)}")
    digest = assignment_hash(frame)
    if digest != assignment.design.get("assignment_hash"):
        raise InputError(
            "the assignment frame does not match its design record's assignment_hash; it was "
            "changed after assign(): assign again"
        )
    record = json.loads(json.dumps(assignment.design))
    if source and not record["inputs"].get("eligible_file"):
        record["inputs"]["eligible_file"] = str(source)
    record.update(experiment_id=eid, intervention=name, started=day.isoformat())
    design_json = json.dumps(record, allow_nan=False, sort_keys=False)
    rows = frame[["customer_id", "arm", "stratum"]]
    view = "_cx_assign_rows"
    now = datetime.now(UTC).replace(tzinfo=None)
    con.register(view, rows)
    try:
        con.execute("BEGIN TRANSACTION")
        try:
            _refuse_existing(con, eid)
            _refuse_unknown(con, view, f"experiment {eid!r}")
            con.execute(
                "INSERT INTO experiments (experiment_id, intervention, design, started, ended) "
                "VALUES (?, ?, ?, ?, NULL)",
                [eid, name, design_json, day],
            )
            con.execute(
                "INSERT INTO assignments (experiment_id, customer_id, arm, stratum, assigned_at) "
                f"SELECT ?, CAST(customer_id AS VARCHAR), CAST(arm AS VARCHAR), "
                f"CAST(stratum AS VARCHAR), CAST(? AS TIMESTAMP) FROM {view}",
                [eid, now],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.unregister(view)
    return {
        "experiment_id": eid,
        "intervention": name,
        "started": day.isoformat(),
        "customers": len(rows),
        "counts": dict(record["counts"]),
        "salt_used": record["salt_used"],
        "assignment_hash": digest,
        "design": record,
    }


def assign_from_file(
    con: duckdb.DuckDBPyConnection,
    experiment_id: str,
    intervention: str,
    eligible_path: str | Path,
    salt: str,
    *,
    control_share: float = 0.5,
    arms: Sequence[str] = (CONTROL, "treatment"),
    shares: Sequence[float] | None = None,
    strata: Sequence[str] = (),
    covariates: Sequence[str] = (),
    rerandomize_p: float | None = None,
    max_tries: int = 1000,
    started: date | str | None = None,
) -> Assignment:
    """Read eligible customers from a CSV or Parquet file, assign them and write the experiment.

    The file needs a ``customer_id`` column (ids are read as text and trimmed). Strata and
    covariate columns not in the file are taken from the store's customers table. Text covariate
    columns from a file whose every value is a number are used as numbers.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A writable store holding every eligible customer.
    experiment_id, intervention, started
        As in :func:`write_assignment`.
    eligible_path : str or Path
        ``.csv`` (header row) or ``.parquet`` file.
    salt, control_share, arms, shares, strata, covariates, rerandomize_p, max_tries
        As in :func:`assign`.

    Returns
    -------
    Assignment
        Its ``design`` is the record as stored (with the file name and its sha256).

    Raises
    ------
    InputError
        Naming the file: missing, unreadable or empty, no ``customer_id`` column, missing or
        duplicate ids (with row numbers), unknown customers, a column neither in the file nor
        in customers; and every error of :func:`assign` and :func:`write_assignment`.
    """
    eid = text_setting("experiment_id", experiment_id)
    text_setting("intervention", intervention)
    _refuse_existing(con, eid)
    raw, label, digest, _ = load._read(Path(eligible_path), None)
    frame = raw.to_pandas()
    if "customer_id" not in frame.columns:
        cols = [c for c in frame.columns if c != "_row"]
        raise InputError(f"{label}: no customer_id column; columns: {cols}")
    frame = frame.drop(columns="_row")
    ids = frame["customer_id"].str.strip()
    frame["customer_id"] = ids.where(ids != "", None)
    ids = _customer_ids(frame, label)
    frame["customer_id"] = ids
    strata_names = _names("strata", strata)
    covariate_names = _names("covariates", covariates)
    needed = [c for c in dict.fromkeys(strata_names + covariate_names) if c not in frame.columns]
    view = "_cx_eligible_ids"
    con.register(view, pd.DataFrame({"customer_id": ids}))
    try:
        _refuse_unknown(con, view, label)
        if needed:
            segments = store.segment_columns(con)
            for col in needed:
                if col not in segments:
                    raise InputError(
                        f"{label}: column {col!r} is neither in the file (columns: "
                        f"{list(frame.columns)}) nor a customers column {segments}"
                    )
            cols = ", ".join(f"c.{store.quote_identifier(c)}" for c in needed)
            extra = con.execute(
                f"SELECT c.customer_id, {cols} FROM customers c "
                f"WHERE c.customer_id IN (SELECT customer_id FROM {view})"
            ).df()
            frame = frame.merge(extra, on="customer_id", how="left")
    finally:
        con.unregister(view)
    for col in covariate_names:
        if col not in needed:
            frame[col] = _maybe_numeric(frame[col])
    result = _assign(
        frame,
        salt,
        control_share=control_share,
        arms=arms,
        shares=shares,
        strata=strata_names,
        covariates=covariate_names,
        rerandomize_p=rerandomize_p,
        max_tries=max_tries,
        label=label,
        source=(label, digest),
    )
    written = write_assignment(con, eid, intervention, result, started=started, source=label)
    return replace(result, design=written["design"])


def _maybe_numeric(series: pd.Series) -> pd.Series:
    """A text column as numbers when every value present is a number, else as it is."""
    if _is_numeric(series):
        return series
    numbers = pd.to_numeric(series, errors="coerce")
    if (numbers.notna() == series.notna()).all():
        return numbers.astype("float64")
    return series
