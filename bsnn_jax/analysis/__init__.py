"""Analyses of trained networks: loss landscapes and the papers' figures."""

from bsnn_jax.analysis.landscape import filter_normalized_direction, loss_surface
from bsnn_jax.analysis.plots import plot_accuracy_vs_size, plot_firing_rates, plot_landscape, plot_training_curves

__all__ = [
    "filter_normalized_direction",
    "loss_surface",
    "plot_accuracy_vs_size",
    "plot_firing_rates",
    "plot_landscape",
    "plot_training_curves",
]
