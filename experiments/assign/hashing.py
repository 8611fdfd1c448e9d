"""The salted hash behind every arm, and the fingerprint of a whole assignment."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from attribution.errors import InputError

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
    prefix = (checked_salt(salt) + ":").encode("utf-8")
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


def checked_salt(salt: str) -> str:
    """``salt`` as given, refused when it is not non-empty text (it is hashed verbatim)."""
    if not isinstance(salt, str) or not salt.strip():
        raise InputError(f"salt must be non-empty text, got {salt!r}")
    return salt
