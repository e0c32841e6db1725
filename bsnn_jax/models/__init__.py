"""Network families (ResNet-19, ResNet-18, VGGSNN, VGG-11, a small CNN, a spiking MLP, a 1-D
convnet) in fp/bsnn/agmm variants, and their pure-function (``functional``) and Flax Linen
(``to_linen``) forms."""

from bsnn_jax.models.common import MODEL_ENCODERS, VARIANTS, Conv1dUnit, ConvUnit, DenseUnit, ModelInputError, NetOptions, Variant
from bsnn_jax.models.functional import Functional, functional
from bsnn_jax.models.linen import to_linen
from bsnn_jax.models.registry import FAMILIES, RECURRENT_FAMILIES, create

__all__ = [
    "FAMILIES",
    "MODEL_ENCODERS",
    "RECURRENT_FAMILIES",
    "VARIANTS",
    "Conv1dUnit",
    "ConvUnit",
    "DenseUnit",
    "Functional",
    "ModelInputError",
    "NetOptions",
    "Variant",
    "create",
    "functional",
    "to_linen",
]
