"""Speed and memory benchmarks of bsnn_jax, all measured with the same helpers.

- ``bsnn bench`` (``suite``): the training step of each ``workloads`` entry in its own process
  (``worker``: ``jax_worker`` for bsnn_jax, ``torch_worker`` for the PyTorch peers) and the
  ratios between figures of one run.
- ``python -m bsnn_jax.bench.online_memory``: training memory and step time, BPTT vs online, over T.
- ``python -m bsnn_jax.bench.conv_rates``: GFLOP/s of the reference net's convolutions alone.
- ``python -m bsnn_jax.bench.export_throughput``: inference images/s, packed ``.bsnn`` vs float.

Shared: ``timing`` (blocked calls, medians, the machine), ``memory`` (XLA's buffer assignment,
peak resident memory), ``training`` (the measured step, built by the functions ``bsnn train``
uses). Each command writes its results under ``RESULTS_DIR`` by default.
"""

from pathlib import Path

# Relative to the working directory: run from the repository root, the committed results are
# overwritten in place (the repository's benchmarks/results/); elsewhere a new folder is made.
RESULTS_DIR = Path("benchmarks/results")
