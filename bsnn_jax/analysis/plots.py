"""The AGMM paper's figures, drawn from this library's own measurements (PNG via matplotlib)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: works on headless machines and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_training_curves(runs: Mapping[str, Sequence[Mapping]], path) -> Path:
    """AGMM Fig. 1/6: (a) flip ratio per epoch, (b) train (dark) and test (light) accuracy.

    ``runs`` maps a label to its ``metrics.jsonl`` records (dicts with ``epoch``, ``flip_ratio``,
    ``train_accuracy``, ``test_accuracy``); records missing a key are skipped for that curve.
    """
    fig, (ax_flip, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (label, records) in enumerate(runs.items()):
        color = f"C{i}"
        for ax, key, style in [
            (ax_flip, "flip_ratio", dict(lw=1.8)),
            (ax_acc, "train_accuracy", dict(lw=1.8)),
            (ax_acc, "test_accuracy", dict(lw=1.8, alpha=0.45)),
        ]:
            points = [(r["epoch"], r[key]) for r in records if r.get(key) is not None]
            if points:
                suffix = "" if ax is ax_flip else (" train" if key == "train_accuracy" else " test")
                ax.plot(*zip(*points, strict=True), color=color, label=label + suffix, **style)
    ax_flip.set(xlabel="epoch", ylabel="flip ratio (Eq. 8)", title="(a) weight sign flip ratio")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="(b) accuracy")
    for ax in (ax_flip, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_firing_rates(runs: Mapping[str, Mapping[str, float]], path) -> Path:
    """AGMM Fig. 8: firing rate of every LIF layer, one bar group per layer."""
    layers = list(next(iter(runs.values())).keys()) if runs else []
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(layers) * len(runs)), 4))
    width = 0.8 / max(len(runs), 1)
    x = np.arange(len(layers))
    for i, (label, rates) in enumerate(runs.items()):
        ax.bar(x + i * width, [rates.get(layer, np.nan) for layer in layers], width, label=label)
    ax.set_xticks(x + width * (len(runs) - 1) / 2, [str(i + 1) for i in range(len(layers))])
    ax.set(xlabel="LIF layer", ylabel="firing rate", title="firing rate per layer (test set)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_accuracy_vs_size(points: Sequence[tuple[str, float, float]], path) -> Path:
    """AGMM Fig. 5: test accuracy against model size, one labelled point per (label, MB, accuracy)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (label, size_mb, accuracy) in enumerate(points):
        ax.scatter(size_mb, accuracy, color=f"C{i}", s=50)
        ax.annotate(label, (size_mb, accuracy), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xscale("log")
    ax.set(xlabel="model size (MB, log scale)", ylabel="test accuracy", title="accuracy vs model size")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_landscape(surface: np.ndarray, coords: np.ndarray, path, title: str = "loss landscape") -> Path:
    """AGMM Fig. 2/7: the loss surface as a 3-D plot and as contours."""
    a, b = np.meshgrid(coords, coords, indexing="ij")
    fig = plt.figure(figsize=(11, 4.5))
    ax3d = fig.add_subplot(1, 2, 1, projection="3d")
    ax3d.plot_surface(a, b, surface, cmap="viridis", linewidth=0)
    ax3d.set(xlabel="d1", ylabel="d2", zlabel="loss", title=title)
    ax = fig.add_subplot(1, 2, 2)
    contour = ax.contour(a, b, surface, levels=20, cmap="viridis")
    ax.clabel(contour, fontsize=7)
    ax.set(xlabel="d1", ylabel="d2", title="contours")
    return _save(fig, path)
