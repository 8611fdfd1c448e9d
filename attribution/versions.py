"""Installed package versions: what a published result or a compiled model depends on."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata


def installed(names: Sequence[str]) -> dict[str, str]:
    """Version of each named distribution, ``"not installed"`` for one that is not.

    Examples
    --------
    >>> installed(["numpy"])["numpy"] != "not installed"
    True
    """
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
