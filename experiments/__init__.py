"""Experiments of bsnn_jax: ml_collections config files (``experiments/configs``), one per paper
table row, ablation twin and built-in demo. Run one with ``bsnn train --config FILE --workdir DIR``."""
