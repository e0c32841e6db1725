"""Analyses of trained networks: loss landscapes and plots."""

from bsnn_jax.analysis.landscape import filter_normalized_direction, loss_surface

__all__ = ["filter_normalized_direction", "loss_surface"]
