import matplotlib.image as mpimg
import numpy as np

from bsnn_jax.analysis import plot_accuracy_vs_size, plot_firing_rates, plot_landscape, plot_training_curves


def test_every_figure_writes_a_nonblank_png(tmp_path):
    runs = {
        "AGMM-BSNN": [
            {"epoch": e, "flip_ratio": 0.1 / e, "train_accuracy": 0.5 + 0.1 * e, "test_accuracy": 0.45 + 0.1 * e} for e in range(1, 4)
        ],
        "vanilla BSNN": [{"epoch": e, "flip_ratio": 0.2 / e, "train_accuracy": 0.4 + 0.1 * e, "test_accuracy": None} for e in range(1, 4)],
    }
    coords = np.linspace(-1, 1, 7)
    a, b = np.meshgrid(coords, coords, indexing="ij")
    paths = [
        plot_training_curves(runs, tmp_path / "curves.png"),
        plot_firing_rates({"AGMM": {"l1": 0.1, "l2": 0.2}, "BSNN": {"l1": 0.15, "l2": 0.25}}, tmp_path / "rates.png"),
        plot_accuracy_vs_size([("AGMM", 2.46, 0.80), ("FP", 50.46, 0.81)], tmp_path / "size.png"),
        plot_landscape(a**2 + b**2, coords, tmp_path / "sub" / "landscape.png"),
    ]
    for path in paths:
        image = mpimg.imread(path)
        assert image.shape[0] > 100 and image.std() > 0.01, path
