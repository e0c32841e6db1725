"""What the papers measure: model size, flip ratio, firing rates, SOPs/MACs and energy."""

from bsnn_jax.metrics.activity import (
    MAC_CONVENTIONS,
    Activity,
    OperationCounts,
    Synapse,
    activity_fn,
    firing_rates,
    mac_conventions,
    measure_activity,
    operation_counts,
    run_with_spikes,
)
from bsnn_jax.metrics.energy import AGMM_TABLE2_FIT, ENERGY_MODELS, HOROWITZ_45NM, EnergyModel
from bsnn_jax.metrics.flips import StepFlipRatio, count_flips, flip_kernels, flip_ratio, gradient_stats, signs
from bsnn_jax.metrics.size import ParamSize, SizeReport, model_size

__all__ = [
    "AGMM_TABLE2_FIT",
    "ENERGY_MODELS",
    "HOROWITZ_45NM",
    "Activity",
    "EnergyModel",
    "OperationCounts",
    "ParamSize",
    "SizeReport",
    "StepFlipRatio",
    "Synapse",
    "activity_fn",
    "count_flips",
    "firing_rates",
    "flip_kernels",
    "flip_ratio",
    "gradient_stats",
    "measure_activity",
    "model_size",
    "operation_counts",
    "mac_conventions",
    "MAC_CONVENTIONS",
    "run_with_spikes",
    "signs",
]
