"""Network families (ResNet-19, ResNet-18, VGGSNN, VGG-11, a small CNN) in fp/bsnn/agmm variants."""

from bsnn_jax.models.common import VARIANTS, ConvUnit, ModelInputError, NetOptions, Variant
from bsnn_jax.models.registry import FAMILIES, create

__all__ = ["FAMILIES", "VARIANTS", "ConvUnit", "ModelInputError", "NetOptions", "Variant", "create"]
