"""The peers' reference net in PyTorch, measured in this process (``pip install -e .[bench]``).

The same network as ``models.create("reference", variant="bsnn")``: conv3x3 3->64 (full
precision) BN LIF; binary conv3x3 64->128 BN LIF; avgpool 2; binary conv 128->256 BN LIF;
avgpool 2; binary conv 256->256 BN LIF; global avgpool; FC 256->10. Binary convs use the sign of
the weight times its per-output-channel mean |W| (AGMM Eq. 2, 5) with a clipped straight-through
gradient. LIF: u = 0.5 u + x, spike at 1, hard reset, triangle-like surrogate.

- ``snntorch``: ``snntorch.Leaky`` stepped over T (it is single-step).
- ``spikingjelly``: ``activation_based`` multi-step mode (``step_mode='m'``): stateless layers
  on the flattened ``[T*B, ...]`` batch, ``LIFNode`` over ``[T, B, ...]`` (torch backend).
- ``torch``: the ANN bound, ReLU instead of LIF on a batch of T*B.
"""

from __future__ import annotations

import time
from typing import Any

from bsnn_jax.bench.timing import images_per_second, training_steps
from bsnn_jax.bench.workloads import Workload

PEER_PACKAGES = {"torch": "torch", "snntorch": "snntorch", "spikingjelly": "spikingjelly"}


def _import_peer(framework: str):
    try:
        import torch  # noqa: F401

        if framework != "torch":
            __import__(PEER_PACKAGES[framework])
    except ImportError as error:
        raise ImportError(
            f"the {framework} peer is not installed ({error}); run `pip install -e .[bench]` "
            "(CPU PyTorch: add `--extra-index-url https://download.pytorch.org/whl/cpu`)"
        ) from error


# The reference net: (in, out, binary) per 3x3 conv, 2x2 average pools after these convs.
WIDTHS = [(3, 64, False), (64, 128, True), (128, 256, True), (256, 256, True)]
POOLS_AFTER = {1, 2}


def build(workload: Workload):
    """The torch module of ``workload``: ``[N, C, H, W]`` images -> logits averaged over T."""
    builders = {"torch": _ann_bound, "snntorch": _snntorch_net, "spikingjelly": _spikingjelly_net}
    return builders[workload.framework](_conv_factory(), workload.timesteps)


def _conv_factory():
    """``conv(cin, cout, binary)``: a 3x3 conv, binarized per output channel (sign STE times the
    mean |w|, as ``ops.binarize``) where ``binary``."""
    import torch
    from torch import nn

    class SignSTE(torch.autograd.Function):
        @staticmethod
        def forward(ctx, w):
            ctx.save_for_backward(w)
            return torch.where(w >= 0, 1.0, -1.0)

        @staticmethod
        def backward(ctx, g):
            (w,) = ctx.saved_tensors
            return g * (w.abs() <= 1).to(g.dtype)

    class BinaryConv(nn.Conv2d):
        def forward(self, x):
            scale = self.weight.abs().mean(dim=(1, 2, 3), keepdim=True)
            return self._conv_forward(x, SignSTE.apply(self.weight) * scale, self.bias)

    return lambda cin, cout, binary: (BinaryConv if binary else nn.Conv2d)(cin, cout, 3, padding=1, bias=False)


def _ann_bound(conv, timesteps: int):
    """The PyTorch ANN bound: ReLU for LIF, run once (the worker feeds it T x B images)."""
    from torch import nn

    layers = []
    for i, (cin, cout, binary) in enumerate(WIDTHS):
        layers += [conv(cin, cout, binary), nn.BatchNorm2d(cout), nn.ReLU()]
        if i in POOLS_AFTER:
            layers.append(nn.AvgPool2d(2))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, 10)]
    return nn.Sequential(*layers)


def _snntorch_net(conv, timesteps: int):
    """snnTorch: ``Leaky`` neurons stepped over T in Python, the usual snnTorch loop."""
    import snntorch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.convs = nn.ModuleList(conv(cin, cout, b) for cin, cout, b in WIDTHS)
            self.bns = nn.ModuleList(nn.BatchNorm2d(cout) for _, cout, _ in WIDTHS)
            self.lifs = nn.ModuleList(snntorch.Leaky(beta=0.5, threshold=1.0, reset_mechanism="zero", init_hidden=False) for _ in WIDTHS)
            self.fc = nn.Linear(256, 10)

        def forward(self, x):
            mems = [lif.reset_mem() for lif in self.lifs]
            out = 0
            for _ in range(timesteps):
                h = x
                for i in range(len(WIDTHS)):
                    h, mems[i] = self.lifs[i](self.bns[i](self.convs[i](h)), mems[i])
                    if i in POOLS_AFTER:
                        h = nn.functional.avg_pool2d(h, 2)
                out = out + self.fc(h.mean(dim=(2, 3)))
            return out / timesteps

    return Net()


def _spikingjelly_net(conv, timesteps: int):
    """SpikingJelly in multi-step mode: stateless layers on ``[T*B, ...]``, ``LIFNode(step_mode="m")``."""
    from spikingjelly.activation_based import functional, layer, neuron
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            layers = []
            for i, (cin, cout, binary) in enumerate(WIDTHS):
                layers += [
                    layer.SeqToANNContainer(conv(cin, cout, binary), nn.BatchNorm2d(cout)),
                    neuron.LIFNode(tau=2.0, decay_input=False, v_threshold=1.0, v_reset=0.0, step_mode="m"),
                ]
                if i in POOLS_AFTER:
                    layers.append(layer.AvgPool2d(2, step_mode="m"))
            self.features = nn.Sequential(*layers)
            self.fc = nn.Linear(256, 10)

        def forward(self, x):
            functional.reset_net(self)
            h = self.features(x.unsqueeze(0).repeat(timesteps, 1, 1, 1, 1))
            return self.fc(h.mean(dim=(3, 4))).mean(0)

    return Net()


def run(workload: Workload, *, steps: int = 20, inference_calls: int = 10) -> dict[str, Any]:
    """Measures a peer ``workload`` as ``jax_worker.run`` does a ``bsnn_jax`` one (no compile
    step: ``compile_s`` is the first step's time, PyTorch's warm-up)."""
    _import_peer(workload.framework)
    import torch

    torch.manual_seed(0)
    model = build(workload)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    h, w, c = workload.input_shape
    images = torch.rand(workload.examples, c, h, w)
    labels = torch.randint(0, 10, (workload.examples,))
    loss_fn = torch.nn.CrossEntropyLoss()

    def one_step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()
        loss.item()  # results ready

    start = time.perf_counter()
    one_step()
    record: dict[str, Any] = {"compile_s": time.perf_counter() - start, "framework_version": torch.__version__}
    record.update(training_steps(one_step, steps, warmup=1))

    model.eval()

    def infer():
        with torch.no_grad():
            model(images).sum().item()

    record["inference_images_per_s"] = images_per_second(infer, workload.batch_size, inference_calls)
    record["torch_threads"] = torch.get_num_threads()
    return record
