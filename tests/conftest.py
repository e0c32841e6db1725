"""Test-wide setup: 8 virtual CPU devices, so sharding tests see a multi-device mesh.

This must run before JAX initialises its backends, which is why it sits at import time here.
"""

import jax

jax.config.update("jax_num_cpu_devices", 8)
