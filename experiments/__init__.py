"""Control-group design, assignment and the roll-out decision for CX tests.

Built on :mod:`attribution` (never the other way round below its top layer):

- :mod:`experiments.design` (layer 2, pure maths): sample sizes, clusters, timing, the value of
  a test;
- :mod:`experiments.history` (layer 1): design inputs read from the store's history;
- :mod:`experiments.plan`, :mod:`experiments.assign` and :mod:`experiments.decision` (layer 3):
  a plan from the store, customers to arms with a design record, and roll out / stop / extend
  in money.
"""
