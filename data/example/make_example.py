"""Write the example files of data/README.md's "Mapping your data" (a minimal store).

The smallest data that read out: customers with a signup date and one attribute of the
company's own (``plan``, an integer), one randomized experiment with a ``control`` arm, one
outcome month with ``active`` and ``revenue`` and no cost-to-serve (0: not tracked), and what the
intervention cost. Run from the repository root: ``python data/example/make_example.py``.
"""

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
N = 3000


def main() -> None:
    rng = np.random.default_rng(7)
    ids = [f"U{i:05d}" for i in range(N)]
    plan = rng.integers(1, 4, N)
    signup = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 700, N), unit="D")
    treated = rng.random(N) < 0.5
    active = rng.random(N) < 0.72 + 0.05 * treated + 0.03 * (plan - 2)
    revenue = np.where(active, rng.gamma(2.0, 20.0 + 4.0 * treated), 0.0).round(2)
    pd.DataFrame(
        {"customer_id": ids, "signup_date": signup.strftime("%Y-%m-%d"), "plan": plan}
    ).to_csv(HERE / "customers.csv", index=False)
    pd.DataFrame(
        {
            "experiment_id": ["welcome_call"],
            "intervention": ["welcome_call"],
            "started": ["2025-03-01"],
        }
    ).to_csv(HERE / "experiments.csv", index=False)
    pd.DataFrame(
        {
            "experiment_id": "welcome_call",
            "customer_id": ids,
            "arm": np.where(treated, "treatment", "control"),
        }
    ).to_csv(HERE / "assignments.csv", index=False)
    pd.DataFrame(
        {
            "customer_id": ids,
            "period": "2025-03",
            "active": active.astype(int),
            "revenue": revenue,
            "cost_to_serve": 0,
        }
    ).to_csv(HERE / "outcomes.csv", index=False)
    pd.DataFrame(
        {
            "customer_id": np.array(ids)[treated],
            "intervention": "welcome_call",
            "ts": "2025-03-02 10:00:00",
            "unit_cost": 2.5,
            "experiment_id": "welcome_call",
        }
    ).to_csv(HERE / "interventions.csv", index=False)


if __name__ == "__main__":
    main()
