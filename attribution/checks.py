"""One shape for every check: a :class:`Check` is a name, a verdict, a sentence and a table.

The diagnostics gate (:meth:`attribution.diagnostics.Diagnostics.as_check`), the sample-ratio
check (:meth:`attribution.srm.SRMCheck.as_check`), propensity overlap and refutations
(:mod:`attribution.causal`), covariate balance and guardrails (:mod:`experiments.decision`) all
give one, so the refresh log, ``cx decide`` and the report render any list of checks the same
way: :func:`describe_checks` for words, :func:`checks_frame` for a table, :meth:`Check.to_dict`
for the run's JSON (read back with :func:`check_from_dict`).

Verdicts: ``"pass"``; ``"warn"`` (look before trusting the number, nothing is blocked: imbalance,
a refuter that moved the estimate, a guardrail not measured or unclear); ``"fail"`` (the number
must not be used: a failed diagnostics gate, a sample ratio mismatch, a failed guardrail).

Foundation layer: it imports nothing of the package but the JSON helper.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from attribution.jsonready import json_ready

__all__ = [
    "CHECK_COLUMNS",
    "FAIL",
    "PASS",
    "VERDICTS",
    "WARN",
    "Check",
    "check_from_dict",
    "checks_frame",
    "describe_checks",
    "tally",
    "worst_verdict",
]

PASS, WARN, FAIL = "pass", "warn", "fail"
#: The verdicts, mildest first.
VERDICTS = (PASS, WARN, FAIL)
#: Columns of :func:`checks_frame`.
CHECK_COLUMNS = ["check", "subject", "verdict", "sentence"]


@dataclass(frozen=True)
class Check:
    """The verdict of one check, in words and as a table.

    Attributes
    ----------
    name : str
        What was checked: ``"diagnostics"``, ``"sample ratio"``, ``"balance"``, ``"overlap"``,
        ``"refutation: placebo"``, ``"guardrail: csat"``.
    verdict : str
        One of :data:`VERDICTS`.
    sentence : str
        The verdict in plain words, whole on its own (it names what was checked).
    table : pandas.DataFrame
        The numbers behind the verdict (per variable, arm, covariate level...); may be empty.
    subject : str
        What it was checked on, when a list holds several of a kind: a model (``"retention by
        tier"``), an arm, an outcome. Empty otherwise.
    """

    name: str
    verdict: str
    sentence: str
    table: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False, compare=False)
    subject: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(
                f"Check {self.name!r}: verdict must be one of {list(VERDICTS)}, "
                f"got {self.verdict!r}"
            )

    @property
    def passed(self) -> bool:
        """True unless the verdict is ``"fail"`` (a warning does not block)."""
        return self.verdict != FAIL

    def summary(self) -> pd.DataFrame:
        """The table behind the verdict (a copy)."""
        return self.table.copy()

    def describe(self) -> str:
        """The sentence."""
        return self.sentence

    def to_dict(self) -> dict:
        """JSON-ready: ``check``, ``subject``, ``verdict``, ``sentence``, ``table`` (records)."""
        rows = self.table.astype(object).where(self.table.notna(), None).to_dict(orient="records")
        return json_ready(
            {
                "check": self.name,
                "subject": self.subject,
                "verdict": self.verdict,
                "sentence": self.sentence,
                "table": rows,
            }
        )

    def __str__(self) -> str:
        return self.sentence


def check_from_dict(record: dict) -> Check:
    """The :class:`Check` a :meth:`Check.to_dict` record holds (a run's JSON read back).

    Examples
    --------
    >>> c = Check("balance", "warn", "Balance: 1 of 4 levels differ.")
    >>> check_from_dict(c.to_dict()) == c
    True
    """
    return Check(
        name=str(record["check"]),
        verdict=str(record["verdict"]),
        sentence=str(record["sentence"]),
        table=pd.DataFrame.from_records(record.get("table") or []),
        subject=str(record.get("subject") or ""),
    )


def worst_verdict(checks: Iterable[Check]) -> str:
    """The most severe verdict of ``checks`` (``"pass"`` for none).

    Examples
    --------
    >>> worst_verdict([Check("a", "pass", "ok."), Check("b", "warn", "look.")])
    'warn'
    """
    return max((c.verdict for c in checks), key=VERDICTS.index, default=PASS)


def tally(checks: Sequence[Check]) -> str:
    """How many checks gave each verdict, in words.

    Examples
    --------
    >>> tally([Check("a", "pass", "ok."), Check("b", "warn", "look."), Check("c", "pass", "ok.")])
    '3: 2 pass, 1 warn'
    """
    counts = [(v, sum(c.verdict == v for c in checks)) for v in VERDICTS]
    return f"{len(checks)}: " + ", ".join(f"{n} {v}" for v, n in counts if n) if checks else "none"


def describe_checks(checks: Sequence[Check], indent: str = "  ") -> list[str]:
    """One line per check: the verdict in capitals, then its sentence.

    Examples
    --------
    >>> describe_checks([Check("sample ratio", "pass", "SRM check: no mismatch.")])
    ['  PASS  SRM check: no mismatch.']
    """
    return [f"{indent}{c.verdict.upper():<4}  {c.sentence}" for c in checks]


def checks_frame(checks: Sequence[Check]) -> pd.DataFrame:
    """One row per check, columns :data:`CHECK_COLUMNS`."""
    return pd.DataFrame(
        [(c.name, c.subject, c.verdict, c.sentence) for c in checks], columns=CHECK_COLUMNS
    )
