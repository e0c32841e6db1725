"""What the papers measure: model size (and, with training, flip ratio, firing rates, SOPs)."""

from bsnn_jax.metrics.size import ParamSize, SizeReport, model_size

__all__ = ["ParamSize", "SizeReport", "model_size"]
