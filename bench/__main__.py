"""`python -m bench [--quick]`: run every benchmark and write JSON under bench/results/."""

from __future__ import annotations

import argparse

from bench import causal, design, foundation, spark, targeting, trials, uplift


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument(
        "--sizes",
        default="1000000,10000000",
        help="customer counts for the foundation benchmark (default: 1M and 10M)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--only",
        choices=["foundation", "uplift", "design", "causal", "trials", "targeting", "spark"],
        default=None,
        help="run one benchmark",
    )
    args = parser.parse_args()
    sizes = [20_000, 100_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    if args.only in (None, "foundation"):
        print(f"wrote {foundation.run(sizes)}")
    if args.only in (None, "design"):
        print(f"wrote {design.run(100_000 if args.quick else 1_000_000)}")
    if args.only in (None, "causal"):
        print(f"wrote {causal.run(100_000 if args.quick else 1_000_000)}")
    if args.only in (None, "trials"):
        print(f"wrote {trials.run(100_000 if args.quick else 1_000_000)}")
    if args.only in (None, "targeting"):
        print(f"wrote {targeting.run((100_000,) if args.quick else (1_000_000, 10_000_000))}")
    if args.only in (None, "spark"):
        customers, months = (100_000, 6) if args.quick else (10_000_000, 24)
        print(f"wrote {spark.run(customers, months)}")
    if args.only in (None, "uplift"):
        rows = 20_000 if args.quick else 100_000
        print(f"wrote {uplift.run(sizes, row_level_customers=rows)}")


if __name__ == "__main__":
    main()
