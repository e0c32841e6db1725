"""The workloads of ``bsnn bench``: which network, at what T and batch, in which framework.

Every training step is forward + backward + update on one batch of random 32x32x3 (or 48x48x2)
images repeated over T, logits averaged over T, cross-entropy, SGD with momentum 0.9. The
"ANN bound" of a network is the same network with ReLU instead of LIF on a batch of T*B
images: the same convolution FLOPs with no recurrence, what a spiking step could cost at best.
"""

from __future__ import annotations

import dataclasses

FRAMEWORKS = ("bsnn_jax", "torch", "snntorch", "spikingjelly")


@dataclasses.dataclass(frozen=True)
class Workload:
    """One measured configuration.

    Attributes:
      name: its key in ``WORKLOADS`` and in the results.
      framework: ``bsnn_jax``, or a peer: ``torch`` (plain PyTorch, the ANN bound), ``snntorch``,
        ``spikingjelly`` (multi-step mode).
      model: a family of ``models.FAMILIES`` (``bsnn_jax``) or ``"reference"`` (peers).
      variant: ``fp``, ``bsnn`` or ``agmm``.
      timesteps: T; the ANN bound runs one pass on T*B images.
      batch_size: B.
      ann: ReLU instead of LIF on a batch of T*B (the ANN bound).
      input_shape: ``(H, W, C)``.
      slow: a full-size model or a long T, run only with ``--all`` (or by name).
      time_fold: ``bsnn_jax`` only: stateless layers on ``[T*B, ...]`` (True), per time step
        (False), or the backend's default (None); see ``nn.default_time_fold``.
      xla_defaults: ``bsnn_jax`` only: compile with XLA's default options instead of the
        library's (``ops.compiler``), to re-check that choice.
      compute_dtype, remat: ``bsnn_jax`` only: ``models.create``'s mixed-precision and
        recomputation options.
    """

    name: str
    framework: str
    model: str
    variant: str
    timesteps: int
    batch_size: int
    ann: bool = False
    input_shape: tuple[int, int, int] = (32, 32, 3)
    slow: bool = False
    time_fold: bool | None = None
    xla_defaults: bool = False
    compute_dtype: str | None = None
    remat: str | None = "auto"

    @property
    def examples(self) -> int:
        """Images per training step: B, or T*B for the ANN bound."""
        return self.timesteps * self.batch_size if self.ann else self.batch_size


def _reference(framework: str, timesteps: int, *, ann: bool = False) -> Workload:
    prefix = {"bsnn_jax": "reference", "torch": "torch"}.get(framework, framework)
    name = f"{prefix}_{'ann' if ann else 'snn'}_t{timesteps}"
    return Workload(name, framework, "reference", "bsnn", timesteps, 32, ann=ann)


def _full(model: str, timesteps: int, input_shape, *, ann: bool = False) -> Workload:
    name = f"{model}_{'ann' if ann else 'agmm'}_t{timesteps}"
    return Workload(name, "bsnn_jax", model, "agmm", timesteps, 8, ann=ann, input_shape=input_shape, slow=True)


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in [
        *(_reference("bsnn_jax", t) for t in (1, 2, 4, 8)),
        _reference("bsnn_jax", 4, ann=True),
        dataclasses.replace(_reference("bsnn_jax", 4), name="reference_snn_t4_xla_default", xla_defaults=True),
        dataclasses.replace(_reference("bsnn_jax", 4), name="reference_snn_t4_folded", time_fold=True),
        dataclasses.replace(_reference("bsnn_jax", 4), name="reference_snn_t4_per_step", time_fold=False),
        dataclasses.replace(_reference("bsnn_jax", 4), name="reference_snn_t4_bf16", compute_dtype="bfloat16"),
        _reference("torch", 4, ann=True),
        _reference("snntorch", 4),
        _reference("spikingjelly", 4),
        *(_reference("spikingjelly", t) for t in (1, 8)),
        # Long T (issue 20), beside SpikingJelly's multi-step mode: about 10 minutes, so with --all.
        *(dataclasses.replace(_reference(f, t), slow=True) for t in (16, 32) for f in ("bsnn_jax", "spikingjelly")),
        _full("resnet19", 2, (32, 32, 3)),
        _full("resnet19", 4, (32, 32, 3)),
        _full("resnet19", 4, (32, 32, 3), ann=True),
        dataclasses.replace(_full("resnet19", 4, (32, 32, 3)), name="resnet19_agmm_t4_remat", remat="block"),
        _full("vggsnn", 10, (48, 48, 2)),
        _full("vggsnn", 10, (48, 48, 2), ann=True),
    ]
}
