"""cx-attribution: what customer-experience work is worth, in money, with honest uncertainty.

Modules sit in five layers and import only their own or lower ones (the map is in the README's
"Development" section and in ``tests/test_layers.py``, which checks it):

0. foundation: errors, settings, versions, JSON, validation, periods, the ``Check`` shape
   (:mod:`attribution.checks`) and the estimate-row schema (:mod:`attribution.estimates`);
1. the store and what reads it: :mod:`attribution.store`, :mod:`attribution.cells` (customers
   collapsed into cells of sufficient statistics), :mod:`attribution.load` (validated user data),
   :mod:`attribution.synth` (a simulated customer base with planted effects), summaries, the runs
   registry, observational frames;
2. models and checks on cells: the cell-model core and its compiled-model cache, uplift, joint,
   money (:mod:`attribution.value`), the g-formula, diagnostics, the sample-ratio check,
   configuration, wording and the forest plot;
3. workflows: an experiment's readout (:mod:`attribution.readout`), observational attribution
   (:mod:`attribution.causal`), the store check;
4. jobs and surfaces: refresh, the report, the command line.

Below the top layer nothing here imports :mod:`experiments` (test design, assignment and the
roll-out decision), which builds on this package.
"""

from attribution.errors import CxError, InputError, LoadError, StoreLockedError

__version__ = "0.1.0"

__all__ = ["CxError", "InputError", "LoadError", "StoreLockedError", "__version__"]
