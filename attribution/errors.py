"""Errors that cx turns into exit codes: bad input is 2, everything else is 1."""

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
