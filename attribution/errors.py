"""Errors that cx turns into exit codes: bad input is 2, a sample ratio mismatch 4, others 1."""

from __future__ import annotations


class CxError(Exception):
    """Base class for errors cx reports as a message, not a traceback (exit code 1)."""

    exit_code = 1


class InputError(CxError, ValueError):
    """Bad input or usage: a file, row, column, value or setting that cannot be used (exit 2)."""

    exit_code = 2


class StoreLockedError(CxError):
    """Another process holds the store for writing (exit 1: retrying later can succeed)."""

    exit_code = 1


class SampleRatioError(CxError):
    """An experiment's arm counts do not match its designed shares (exit 4).

    Raised before anything is fitted: a sample ratio mismatch means the assignment or the logging
    of the test is broken, so its effects cannot be trusted until the cause is found.

    Attributes
    ----------
    experiment_id : str
        The experiment that failed the check.
    srm : attribution.srm.SRMCheck or None
        The check itself: counts, expected counts, chi2, p-value.
    arms : tuple of str
        Arm names in the order of ``srm.counts``.
    """

    exit_code = 4

    def __init__(self, message: str, experiment_id: str = "", srm=None, arms: tuple[str, ...] = ()):
        super().__init__(message)
        self.experiment_id = experiment_id
        self.srm = srm
        self.arms = tuple(arms)


class LoadError(InputError):
    """A file was rejected whole; ``problems`` lists every problem found, in row order."""

    def __init__(self, source: str, problems: list[str], total: int | None = None, limit: int = 20):
        self.source = source
        self.problems = problems
        self.total = len(problems) if total is None else total
        shown = problems[:limit]
        lines = [
            f"{source}: rejected, nothing was written ({self.total} problem"
            f"{'s' if self.total != 1 else ''})"
        ]
        lines += [f"  {p}" for p in shown]
        if self.total > len(shown):
            lines.append(f"  ... and {self.total - len(shown)} more")
        super().__init__("\n".join(lines))
