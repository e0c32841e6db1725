"""What each paper row would cost to train on one modern GPU: an estimate from step times measured
here, scaled by FLOPs.

    python -m experiments.reproduction_cost            # table in experiments/results/reproduction_cost/

Method (labelled an estimate wherever it is quoted):

1. Training FLOPs of a row = 6 x MACs per example and time step (forward 2 FLOPs per MAC,
   backward twice the forward) x T x training examples x epochs. MACs are those of every
   synaptic layer, counted by running the model once (``metrics.measure_activity``).
2. The achieved rate of this CPU, per training mode, from committed benchmark step times:
   BPTT from ResNet-19 AGMM T=2 batch 8 (``benchmarks/results/bench_full.json``), online from
   VGG-11 T=2 batch 8 (``benchmarks/results/online_memory.json``); the ImageNet ResNet-18 rows
   from ResNet-18 online T=2 batch 2 at 224x224 (``benchmarks/results/online_resnet18.json``,
   ``python -m bsnn_jax.bench.online_memory --model resnet18 --input-shape 224,224,3 --batch-size 2
   --timesteps 2 --methods online --out benchmarks/results/online_resnet18``; the bench builds
   the 7x7/2 stem, the rows the ``bireal`` one: the rate, not the step time, carries over).
   CPU hours = FLOPs / rate.
3. GPU hours = FLOPs / (:data:`GPU_FLOPS` x the mode's rate here / the BPTT rate here):
   :data:`GPU_FLOPS` is an assumed sustained BPTT rate for one A100-class GPU (float32 with TF32
   convolutions), and online training is assumed to reach the same share of it as here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax.numpy as jnp

from bsnn_jax import configs, metrics, models
from bsnn_jax.configs.agmm_table1 import TABLE1
from bsnn_jax.configs.bso_table2 import BSO_ROWS

ROOT = Path(__file__).resolve().parents[1]
GPU_FLOPS = 25e12  # assumed: ~16% of an A100's 156 TFLOP/s TF32 peak, as BN/LIF/elementwise layers are memory-bound
TRAIN_EXAMPLES = {"cifar10": 50_000, "cifar100": 50_000, "imagenet": 1_281_167, "dvs_gesture": 1_077, "dvs_cifar10": 9_000}
INPUT = {"cifar10": (32, 32, 3), "cifar100": (32, 32, 3), "imagenet": (224, 224, 3), "dvs_gesture": (48, 48, 2), "dvs_cifar10": (48, 48, 2)}
CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet": 1000, "dvs_gesture": 11, "dvs_cifar10": 10}


def macs_per_step(model_name: str, dataset: str, stem: str | None = None) -> float:
    """Multiply-accumulates of every synaptic layer for one example and one time step."""
    shape = INPUT[dataset]
    model = models.create(model_name, variant="bsnn", num_classes=CLASSES[dataset], timesteps=1, input_shape=shape, stem=stem, rngs=0)
    activity = metrics.measure_activity(model, [jnp.zeros((1, 1) + INPUT[dataset])])
    return sum(s.macs_per_step for s in activity.synapses.values())


def measured_rates() -> dict[str, float]:
    """FLOP/s this CPU achieved in the committed training-step benchmarks, per training mode."""
    results = ROOT / "benchmarks" / "results"
    full = {r["workload"]: r for r in json.loads((results / "bench_full.json").read_text())["records"]}
    bptt_step = full["resnet19_agmm_t2"]["step_median_s"]
    online = json.loads((results / "online_memory.json").read_text())
    online_step = next(r["median_s"] for r in online["records"] if r["method"] == "online" and r["timesteps"] == 2)
    batch = 8
    rates = {
        "bptt": 6 * macs_per_step("resnet19", "cifar100") * 2 * batch / bptt_step,
        "online": 6 * macs_per_step("vgg11", "cifar10") * 2 * batch / online_step,
    }
    resnet18 = results / "online_resnet18.json"
    if resnet18.exists():
        bench = json.loads(resnet18.read_text())
        record = next(r for r in bench["records"] if r["method"] == "online" and r["median_s"])
        work = 6 * macs_per_step("resnet18", "imagenet") * record["timesteps"] * bench["config"]["batch_size"]
        rates["online_resnet18"] = work / record["median_s"]
    return rates


def rate_key(config, rates: dict[str, float]) -> str:
    """Which measured rate prices a row: ResNet-18's own for its online rows (when measured),
    else its training mode's."""
    own = config.train.mode == "online" and config.model.name == "resnet18" and "online_resnet18" in rates
    return "online_resnet18" if own else config.train.mode


def rows(rates: dict[str, float]) -> list[dict]:
    """One entry per AGMM Table 1 and BSO Table 2 row: paper number, config, epochs, costs, from
    this CPU's measured ``rates`` (:func:`measured_rates`)."""
    macs, out = {}, []
    for name in [*TABLE1, *BSO_ROWS]:
        config = configs.get(name)
        key = (config.model.name, config.dataset.name, config.model.stem)
        macs.setdefault(key, macs_per_step(*key))
        flops = 6 * macs[key] * config.model.timesteps * TRAIN_EXAMPLES[config.dataset.name] * config.num_epochs
        rate = rates[rate_key(config, rates)]
        out.append(
            {
                "config": name,
                "paper": {**TABLE1, **BSO_ROWS}[name]["target"],
                "epochs": config.num_epochs,
                "mode": config.train.mode,
                "rate": rate_key(config, rates),
                "gmacs_per_step": macs[key] / 1e9,
                "pflops": flops / 1e15,
                "cpu_hours_here": flops / rate / 3600,
                # online steps reach a smaller share of the hardware, here as (assumed) on the GPU
                "gpu_hours_estimate": flops / (GPU_FLOPS * rate / rates["bptt"]) / 3600,
            }
        )
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=ROOT / "experiments" / "results" / "reproduction_cost", type=Path)
    args = parser.parse_args(argv)
    rates = measured_rates()
    table = rows(rates)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "costs.json").write_text(json.dumps({"gpu_flops_assumed": GPU_FLOPS, "cpu_flops_measured": rates, "rows": table}, indent=1))
    lines = [
        "| config | paper % | epochs | GMACs/example/step | PFLOPs | CPU hours here | GPU hours (estimate) |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| `{r['config']}` | {r['paper']} | {r['epochs']} | {r['gmacs_per_step']:.3f} | {r['pflops']:.1f} | "
        f"{r['cpu_hours_here']:,.0f} | {r['gpu_hours_estimate']:,.1f} |"
        for r in table
    ]
    (args.out / "costs.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
