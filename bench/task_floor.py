"""The floor: enqueue->start of a no-op task on one real worker, back to back and with gaps.

.venv/bin/python bench/task_floor.py [--samples 300]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stack import measure_task_floor, running_stack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    with running_stack() as stack:
        stack.start(web=False, sandbox=False)
        stack.start_worker("floor", concurrency=1)
        for label, gap in (("back to back", 0.0), ("20 ms idle gaps", 0.02)):
            figures = measure_task_floor(stack.redis_url, samples=args.samples, gap=gap)
            print(
                f"no-op task enqueue->start, {label}: "
                + ", ".join(f"{k} {v:.2f} ms" for k, v in figures.items())
            )


if __name__ == "__main__":
    main()
