"""cx-attribution: what customer-experience work is worth, in money, with honest uncertainty.

The store (:mod:`attribution.store`) holds customer outcomes; :mod:`attribution.load` validates and
loads user data; :mod:`attribution.cells` collapses customers into cells of sufficient statistics;
:mod:`attribution.synth` simulates a customer base with known effects.
"""

from attribution.errors import CxError, InputError, LoadError, StoreLockedError

__version__ = "0.1.0"

__all__ = ["CxError", "InputError", "LoadError", "StoreLockedError", "__version__"]
