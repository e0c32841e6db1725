"""``.bsnn`` of a recurrent MLP: the file computes the model's logits (its V kept at float32 for now)."""

import jax
import numpy as np

from bsnn_jax import export, models

DESCRIPTION = dict(name="mlp", variant="bsnn", num_classes=4, input_shape=(6,), timesteps=3, recurrent=True)


def test_recurrent_mlp_file_computes_the_model(tmp_path):
    model = models.create(**DESCRIPTION, rngs=0)
    model.eval()
    x = np.asarray(jax.random.normal(jax.random.key(1), (5, 6)))
    export.save(model, DESCRIPTION, tmp_path / "r.bsnn")
    loaded = export.load(tmp_path / "r.bsnn")
    np.testing.assert_allclose(loaded.logits(x), np.asarray(model(x)).mean(0), atol=1e-5)
    assert any(np.any(np.asarray(lif.recurrent.kernel[...]) != 0) for lif in model.lifs)  # V takes part
