"""Runs one workload in this process and prints its record as one JSON line (``bsnn bench``
starts one of these per workload, so no measurement sees another's memory or caches).

    python -m bsnn_jax.bench.worker WORKLOAD [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import sys

from bsnn_jax.bench.workloads import WORKLOADS


def measure(name: str, steps: int) -> dict:
    """The record of workload ``name``: its description plus what its framework's worker measured."""
    if name not in WORKLOADS:
        raise ValueError(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}")
    workload = WORKLOADS[name]
    if workload.framework == "bsnn_jax":
        from bsnn_jax.bench import jax_worker as worker
    else:
        from bsnn_jax.bench import torch_worker as worker
    record = {
        "workload": name,
        "framework": workload.framework,
        "model": workload.model,
        "variant": workload.variant,
        "timesteps": workload.timesteps,
        "batch_size": workload.batch_size,
        "ann": workload.ann,
        "input_shape": list(workload.input_shape),
        "steps": steps,
    }
    record.update(worker.run(workload, steps=steps))
    return record


def main(argv: list[str] | None = None) -> int:
    """Prints the record of one workload as a JSON line; 2 (and an ``error`` record) when it cannot run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", help=f"one of: {', '.join(WORKLOADS)}")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps (after 2 warm-up steps)")
    args = parser.parse_args(argv)
    try:
        record = measure(args.workload, args.steps)
    except (ValueError, ImportError) as error:
        print(json.dumps({"workload": args.workload, "error": str(error)}))
        return 2
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
