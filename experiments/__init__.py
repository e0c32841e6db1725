"""Experiments of bsnn_jax: reproduction scripts (``ablation``, ``compare_tbso``) and their results.
The configs they train are named configs of :mod:`bsnn_jax.configs` (``bsnn train --config NAME``)."""
