"""The ``bsnn`` command line.

A user error (a bad config, missing data, a workdir holding another run, a damaged checkpoint or
export, input that does not fit the model, ...) is reported by :func:`main` as one line
``error: ...`` naming the problem and its fix, with exit status 2 and no traceback; ``bsnn --debug``
or ``BSNN_DEBUG=1`` shows the traceback instead. The subcommands just raise: :func:`_user_errors`
lists the exception classes whose messages are written for users.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import flax
import jax
from flax import nnx
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bsnn_jax import __version__, models
from bsnn_jax.metrics import model_size

USER_ERROR = 2  # the exit status of a user error, as of argparse's usage errors
DEBUG_ENV = "BSNN_DEBUG"


class UsageError(Exception):
    """A mistake on the command line found by the cli itself; the message says how to fix it."""


def _user_errors() -> tuple[type[BaseException], ...]:
    """The errors whose message names the problem and its fix, reported without a traceback."""
    from bsnn_jax.data import DataNotFoundError, IdxFormatError, NpzFormatError
    from bsnn_jax.export import ExportError, ExportFormatError, NIRExportError
    from bsnn_jax.models import ModelInputError
    from bsnn_jax.train import CheckpointError, ConfigError, NonFiniteLossError, RunDirectoryError
    from bsnn_jax.train.mesh import MeshError

    return (
        UsageError,
        ConfigError,
        DataNotFoundError,
        NpzFormatError,
        IdxFormatError,
        ModelInputError,
        MeshError,
        RunDirectoryError,
        CheckpointError,
        NonFiniteLossError,
        ExportError,
        ExportFormatError,
        NIRExportError,
    )


def _report_error(error: BaseException, command: str) -> None:
    """Prints ``error: MESSAGE`` on stderr as one line (a message laid out over several lines,
    such as the commands that prepare a dataset, is joined with "; ")."""
    message = "; ".join(line.strip() for line in str(error).splitlines() if line.strip())
    # Data errors give the fix as Python arguments (data_dir=, download=True): add their flags.
    if command == "train" and "data_dir=" in message:
        message += " (with bsnn train: --config.dataset.data_dir=DIR points at the data, --config.dataset.download=true lets it be fetched)"
    # Text, not markup: messages hold shapes and lists in brackets.
    Console(stderr=True, soft_wrap=True).print(Text.assemble(("error:", "bold red"), " ", message))


def _debugging(args: argparse.Namespace) -> bool:
    return args.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _shape(text: str) -> tuple[int, int, int]:
    try:
        h, w, c = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected H,W,C such as 32,32,3, got {text!r}") from None
    return h, w, c


def _size_table(report, title: str) -> Table:
    table = Table(title=title)
    for col, justify in [("layer", "left"), ("shape", "left"), ("bits/weight", "right"), ("params", "right"), ("bytes", "right")]:
        table.add_column(col, justify=justify)
    for r in report.rows:
        table.add_row(r.path, "x".join(map(str, r.shape)), str(r.bits), f"{r.params:,}", f"{r.bytes:,.0f}")
    table.add_section()
    table.add_row("total", "", "", f"{report.total_params:,}", f"{report.total_bytes:,.0f}")
    return table


def _measured_table(measured: dict) -> Table:
    table = Table(title=f"measured on the test set, checkpoint step {measured['step']} (per inference, all T steps)")
    for col, justify in [("layer", "left"), ("input", "left"), ("mean input", "right"), ("MACs/step", "right")]:
        table.add_column(col, justify=justify)
    for path, layer in measured["layers"].items():
        kind = "spikes (SOPs)" if layer["spike_input"] else "real (MACs)"
        table.add_row(path, kind, f"{layer['input_rate']:.4f}", f"{layer['macs_per_step']:,.0f}")
    return table


def _report(args: argparse.Namespace) -> int:
    measured = None
    if args.workdir is not None:
        from bsnn_jax.analysis.runs import measure_run

        measured = measure_run(args.workdir, best=args.best, max_examples=args.max_examples)
        spec = measured["model"]
        spec = {**spec, "input_shape": tuple(spec["input_shape"])}
    elif args.model is not None:
        spec = {
            "name": args.model,
            "variant": args.variant,
            "num_classes": args.num_classes,
            "timesteps": args.timesteps,
            "input_shape": args.input_shape,
        }
    else:
        raise UsageError("say which model: --model NAME (with --variant, --num-classes, ...) or --workdir DIR of a trained run")
    name = spec.pop("name")
    # eval_shape: counting ResNet-18's 11.7M parameters needs no memory and no initialisation.
    report = model_size(nnx.eval_shape(lambda: models.create(name, **spec)))
    if args.json:
        extra = {"measured": measured} if measured else {}
        print(json.dumps({"model": name, "variant": spec["variant"], **report.to_dict(), **extra}, indent=2))
        return 0
    console = Console(soft_wrap=True)
    console.print(_size_table(report, f"{name} ({spec['variant']}), T={spec['timesteps']}: size as the papers count it"))
    console.print(
        f"total parameters {report.total_params:,} ({report.binary_params:,} binary), "
        f"size {report.size_mb:.2f} MB (1 bit per binary weight, 32 per other, MB = 10^6 bytes)"
    )
    if measured:
        console.print(_measured_table(measured))
        for layer, rate in measured["firing_rates"].items():
            console.print(f"  firing rate {layer}: {rate:.4f}")
        console.print(f"mean firing rate {measured['mean_firing_rate']:.4f}")
        console.print(f"SOPs {measured['sops'] / 1e9:.6f} G, MACs {measured['macs'] / 1e9:.6f} G per inference")
        for label, mj in measured["energy_mj"].items():
            console.print(f"energy {mj:.6f} mJ  ({label})")
        console.print("MACs under other counting conventions (AGMM Table 2's 0.027 G for ResNet-19 follows from none of them):")
        for label, macs in measured["macs_by_convention"].items():
            console.print(f"  {macs / 1e9:.6f} G  {label}")
    return 0


def _landscape(args: argparse.Namespace) -> int:
    from bsnn_jax.analysis.runs import landscape_run

    console, start = Console(soft_wrap=True), time.monotonic()

    def progress(done: int, rows: int) -> None:
        elapsed = time.monotonic() - start
        console.print(f"landscape: row {done}/{rows} of the grid ({elapsed:.0f} s, ~{elapsed / done * (rows - done):.0f} s left)")

    result = landscape_run(
        args.workdir,
        resolution=args.resolution,
        span=args.span,
        examples=args.examples,
        seed=args.seed,
        best=args.best,
        out_dir=args.out,
        progress=progress,
    )
    console.print(
        f"loss landscape of checkpoint step {result['step']}: {result['png']} and {result['npz']} "
        f"(loss {result['center_loss']:.4f} at the checkpoint, {result['min_loss']:.4f} lowest on the grid)"
    )
    return 0


def _train(args: argparse.Namespace) -> int:
    import jax

    from bsnn_jax import configs, train

    spec = args.config
    if spec is None:
        saved = train.RunDir(args.workdir).config_file
        if not saved.exists():
            raise UsageError(f"--config is required: {args.workdir} has no {saved.name} of an earlier run to resume")
        spec = saved
    config = configs.load(spec, args.overrides)
    # Before anything touches a device; then only process 0 speaks, unless --verbose.
    train.mesh.initialize_distributed(config.mesh)
    console = Console(soft_wrap=True, quiet=not (args.verbose or jax.process_index() == 0))
    summary = train.fit(config, args.workdir, console=console)
    if summary.get("test_accuracy") is not None:
        console.print(
            f"test accuracy {100 * summary['test_accuracy']:.2f}% (best {100 * summary['best_test_accuracy']:.2f}% at step "
            f"{summary['best_step']}), firing rate {summary.get('firing_rate', float('nan')):.4f} (all LIF neurons), "
            f"model size {summary['model_size_mb']:.4f} MB; metrics in {Path(args.workdir) / 'metrics.jsonl'}"
        )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from bsnn_jax import train

    result = train.evaluate(args.workdir, step=args.step, best=args.best)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    console = Console(soft_wrap=True)
    m = result["model"]
    console.print(f"{m['name']} ({m['variant']}), T={m['timesteps']} on {result['dataset']}, checkpoint step {result['step']}")
    console.print(
        f"test accuracy {100 * result['test_accuracy']:.2f}%  test loss {result['test_loss']:.4f}  "
        f"firing rate {result.get('firing_rate', float('nan')):.4f} (all LIF neurons)  model size {result['model_size_mb']:.4f} MB"
    )
    for layer, rate in result.get("firing_rates", {}).items():
        console.print(f"  firing rate {layer}: {rate:.4f}")
    return 0


def _export_nir(args: argparse.Namespace) -> int:
    from bsnn_jax import export

    if args.fp16 or args.verify:
        raise UsageError("--fp16 and --verify apply to --format bsnn; a NIR graph stores float32 and is checked by make test-interop")
    result = export.export_nir_run(args.workdir, args.out, step=args.step, best=args.best, dt=args.dt, force=args.force)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    nodes = ", ".join(f"{n} {k}" for k, n in sorted(result["nodes"].items()))
    Console(soft_wrap=True).print(
        f"wrote {result['path']} (NIR, checkpoint step {result['step']}): {result['file_bytes']:,} bytes; {nodes}; "
        f"input {result['input_shape']} (C, H, W, images as stored: normalization is the first node), output {result['output_shape']} "
        f"logits per time step; LIF as nir.LIF with tau = dt/(1 - tau_b), r = tau/dt, Euler dt = {result['dt']:g}",
        highlight=False,
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    from bsnn_jax import export

    if args.format == "nir":
        return _export_nir(args)
    result = export.export_run(args.workdir, args.out, step=args.step, best=args.best, verify=args.verify, fp16=args.fp16, force=args.force)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    ratio = result["payload_bytes"] / result["report_bytes"]
    Console(soft_wrap=True).print(
        f"wrote {result['path']} (checkpoint step {result['step']}): {result['file_bytes']:,} bytes = "
        f"{result['payload_bytes']:,} of tensors ({100 * ratio:.2f}% of the bsnn report size {result['report_bytes']:,.0f}) "
        f"+ {result['header_bytes']:,} of header and manifest; BN folded in {len(result['folded_units'])} conv units",
        highlight=False,
    )
    if "verify" in result:
        v = result["verify"]
        Console(soft_wrap=True).print(
            f"verified on {v['examples']:,} test examples: the same prediction as the float model on "
            f"{100 * v['identical_predictions']:.2f}%, logits within 1e-4 on {100 * v['logits_within_1e-4']:.2f}% "
            f"(max difference {v['max_abs_logit_diff']:.3g}); accuracy {100 * v['float_accuracy']:.2f}% float, "
            f"{100 * v['packed_accuracy']:.2f}% packed",
            highlight=False,
        )
    return 0


def _read_inputs(path: str) -> tuple:
    """``(images, labels or None)`` of an .npz holding ``x`` (and ``y``), or ``x_test`` (and ``y_test``)."""
    import zipfile

    import numpy as np

    from bsnn_jax.data import NpzFormatError

    if not Path(path).is_file():
        raise UsageError(f"{path} does not exist; save the images with np.savez({path!r}, x=images, y=labels)")
    try:
        npz = np.load(path, allow_pickle=False)
    except (ValueError, zipfile.BadZipFile) as e:
        raise NpzFormatError(f"{path}: not a readable .npz file ({e}); save the images with np.savez(path, x=images, y=labels)") from e
    with npz:
        for x_key, y_key in (("x", "y"), ("x_test", "y_test")):
            if x_key in npz.files:
                images = npz[x_key]
                labels = npz[y_key] if y_key in npz.files else None
                return (images[..., None] if images.ndim == 3 else images), labels
        raise NpzFormatError(f"{path} holds {npz.files}; put the images under 'x' (labels, optional, under 'y')")


def _check_inputs(images, packed, args: argparse.Namespace) -> None:
    """Images that the packed model cannot take as they are: a UsageError saying what it takes."""
    import numpy as np

    h, w, c = packed.manifest["model"]["input_shape"]
    if images.ndim not in (4, 5) or tuple(images.shape[-3:]) != (h, w, c):
        raise UsageError(
            f"{args.input} holds images of shape {images.shape}, but {args.model} takes [N, {h}, {w}, {c}] "
            f"(or event frames [N, T, {h}, {w}, {c}]); store them in that layout (NHWC)"
        )
    norm = packed.normalization
    if not args.normalized and norm is not None and norm.scale != 1.0 and images.dtype != np.uint8:
        raise UsageError(
            f"{args.input} holds {images.dtype} images, but the model's data was stored as uint8 (normalized with "
            f"scale {norm.scale:.6g}, mean {norm.mean}, std {norm.std}): pass uint8 images, or --normalized if they already are"
        )


def _predict(args: argparse.Namespace) -> int:
    import numpy as np

    from bsnn_jax import export

    if not Path(args.model).is_file():
        raise UsageError(f"{args.model} does not exist; write it with bsnn export --workdir RUN --out {args.model}")
    packed = export.load(args.model)
    images, labels = _read_inputs(args.input)
    _check_inputs(images, packed, args)
    classes = packed.predict(images, batch_size=args.batch_size, normalized=args.normalized)
    accuracy = float(np.mean(classes == labels)) if labels is not None else None
    if args.json:
        print(json.dumps({"predictions": classes.tolist(), "num_examples": len(classes), "accuracy": accuracy}))
        return 0
    print("\n".join(map(str, classes.tolist())))
    summary = f"{len(classes)} examples" + (f", accuracy {100 * accuracy:.2f}%" if accuracy is not None else "")
    Console(stderr=True, soft_wrap=True).print(summary, highlight=False)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from bsnn_jax.bench import suite

    names = args.workloads.split(",") if args.workloads else suite.default_workloads(include_slow=args.all)
    console = Console(stderr=args.json)
    try:
        result = suite.run(names, steps=args.steps, rounds=args.rounds, timeout=args.timeout, log=console.print)
    except ValueError as error:  # suite.run's checks of the names and counts: plain ValueErrors
        raise UsageError(str(error)) from error
    json_path, md_path = suite.save(result, Path(args.out))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(suite.markdown(result))
    console.print(f"runtime {result['runtime_s']:.0f} s; wrote {json_path} and {md_path}")
    return 0


def _add_report(sub) -> None:
    report = sub.add_parser("report", help="per-layer parameter and size table of a model")
    report.add_argument("--model", default=None, choices=sorted(models.FAMILIES))
    report.add_argument("--variant", default="agmm", choices=sorted(models.VARIANTS))
    report.add_argument("--num-classes", type=int, default=None, help="classifier width (family default)")
    report.add_argument("--timesteps", type=int, default=4, help="T (AGMM keeps one alpha per step)")
    report.add_argument("--input-shape", type=_shape, default=None, help="H,W,C of one frame")
    report.add_argument("--json", action="store_true", help="print JSON instead of a table")
    report.add_argument(
        "--workdir", default=None, help="a trained run: its model, plus firing rates, SOPs, MACs and energy measured on its test set"
    )
    report.add_argument("--best", action="store_true", help="with --workdir: the best checkpoint instead of the latest")
    report.add_argument("--max-examples", type=int, default=None, help="with --workdir: measure on at most this many test examples")
    report.set_defaults(run=_report)


def _add_landscape(sub) -> None:
    landscape = sub.add_parser("landscape", help="2-D loss landscape around a run's checkpoint (PNG and .npz)")
    landscape.add_argument("--workdir", required=True, help="a directory written by bsnn train")
    landscape.add_argument("--resolution", type=int, default=21, help="grid points per direction")
    landscape.add_argument("--span", type=float, default=1.0, help="the grid covers [-span, span] along each direction")
    landscape.add_argument("--examples", type=int, default=1000, help="test examples the loss is averaged over")
    landscape.add_argument("--seed", type=int, default=0, help="seed of the two random directions")
    landscape.add_argument("--best", action="store_true", help="the best checkpoint instead of the latest")
    landscape.add_argument("--out", default=None, help="output directory (default: the workdir)")
    landscape.set_defaults(run=_landscape)


def _add_train(sub) -> None:
    train = sub.add_parser(
        "train",
        help="train (or resume) a run from a named config or an ml_collections config file",
        description="Trains the run described by --config in --workdir; running it again resumes from the last "
        "checkpoint. Override any config field with --config.KEY=VALUE (nested keys with dots, e.g. "
        "--config.optimizer.learning_rate=0.05 --config.num_epochs=3).",
    )
    train.add_argument(
        "--config",
        default=None,
        help="a config name (demo, fashion_agmm, fashion_tbso, a paper table row such as cifar10_resnet19_t2; all in "
        "bsnn_jax.configs.names()), a file PATH.py[:arg] or a run's config.json (default: WORKDIR/config.json, to resume)",
    )
    train.add_argument("--workdir", required=True, help="run directory: config.json, metrics.jsonl, checkpoints/")
    train.add_argument("--verbose", action="store_true", help="in a multi-process run, every process prints (default: process 0 only)")
    train.set_defaults(run=_train)


def _add_evaluate(sub) -> None:
    evaluate = sub.add_parser("evaluate", help="score a run's checkpoint on its test split")
    evaluate.add_argument("--workdir", required=True, help="a directory written by bsnn train")
    which = evaluate.add_mutually_exclusive_group()
    which.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    which.add_argument("--best", action="store_true", help="the checkpoint with the best test accuracy")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of text")
    evaluate.set_defaults(run=_evaluate)


def _add_export(sub) -> None:
    export = sub.add_parser(
        "export",
        help="write a run's checkpoint as one bit-packed .bsnn file (1 bit per binary weight, BN folded)",
        description="Writes the trained model as one file: binary kernels at 1 bit per weight, BN folded into a "
        "per-channel scale and shift, full-precision layers in float32 (--fp16: float16), and a manifest from which "
        "bsnn_jax.export.load rebuilds the model without the training config.",
    )
    export.add_argument("--workdir", required=True, help="a directory written by bsnn train")
    export.add_argument("--out", required=True, help="the file to write (.bsnn, or .nir with --format nir)")
    export.add_argument(
        "--format",
        choices=("bsnn", "nir"),
        default="bsnn",
        help="bsnn: bit-packed file for bsnn_jax.export.load; nir: a NIR graph (HDF5) for snnTorch, Norse, Spyx, Lava, ... "
        "(FP-SNN and vanilla BSNN; AGMM has no NIR form)",
    )
    export.add_argument(
        "--dt", type=float, default=1.0, help="NIR: the Euler step one time step stands for (1e-4 for snnTorch's import_from_nir)"
    )
    which = export.add_mutually_exclusive_group()
    which.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    which.add_argument("--best", action="store_true", help="the checkpoint with the best test accuracy")
    export.add_argument("--fp16", action="store_true", help="store full-precision kernels in float16")
    export.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    export.add_argument(
        "--verify", type=int, default=0, metavar="N", help="load the file back and compare it with the float model on N test examples"
    )
    export.add_argument("--json", action="store_true", help="print JSON instead of text")
    export.set_defaults(run=_export)


def _add_predict(sub) -> None:
    predict = sub.add_parser(
        "predict",
        help="predicted classes of the images in an .npz, from a .bsnn file's packed weights",
        description="Prints one predicted class per line (and, on stderr, the accuracy when the .npz has labels). "
        "INPUT holds images under 'x' (or 'x_test'), [N, H, W(, C)] as the training data stores them (uint8 for "
        "image sets; the model's normalization is applied), labels under 'y' (or 'y_test'), optional.",
    )
    predict.add_argument("--model", required=True, help="a .bsnn file written by bsnn export")
    predict.add_argument("input", help="an .npz with x (images) and optionally y (labels)")
    predict.add_argument("--batch-size", type=int, default=256, help="images per compiled batch")
    predict.add_argument("--normalized", action="store_true", help="the images are model input already (skip the normalization)")
    predict.add_argument("--json", action="store_true", help="print JSON instead of text")
    predict.set_defaults(run=_predict)


def _add_bench(sub) -> None:
    bench = sub.add_parser(
        "bench",
        help="training-step time, compile time, memory and inference throughput, side by side with the peers",
        description="Measures each workload in its own process (median of --steps blocked training steps after two "
        "warm-up steps, split over --rounds passes through the workloads in alternating order and pooled) and the "
        "ratios between figures of this one run. Peers (PyTorch, snnTorch, SpikingJelly) are "
        "measured when installed (make bench installs them) and skipped otherwise.",
    )
    bench.add_argument("--workloads", default=None, help="comma-separated names (default: the reference net in every framework)")
    bench.add_argument("--all", action="store_true", help="also the full-size models (ResNet-19, VGGSNN): slow")
    bench.add_argument("--steps", type=int, default=21, help="timed training steps per workload, over all rounds")
    bench.add_argument("--rounds", type=int, default=3, help="passes through the workloads, in alternating order, pooled")
    bench.add_argument("--timeout", type=float, default=1800.0, help="seconds per workload")
    bench.add_argument("--out", default="benchmarks/results/bench", help="writes OUT.json and OUT.md")
    bench.add_argument("--json", action="store_true", help="print the results as JSON (progress goes to stderr)")
    bench.set_defaults(run=_bench)


def build_parser() -> argparse.ArgumentParser:
    """The ``bsnn`` parser: global ``--debug``, one subparser per subcommand."""
    parser = argparse.ArgumentParser(prog="bsnn", description="Binary spiking neural networks in JAX.")
    parser.add_argument("--version", action="version", version=f"bsnn {__version__} (jax {jax.__version__}, flax {flax.__version__})")
    parser.add_argument(
        "--debug", action="store_true", help=f"show the traceback of an error instead of a one-line report (or set {DEBUG_ENV}=1)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_report(sub)
    _add_landscape(sub)
    _add_train(sub)
    _add_evaluate(sub)
    _add_export(sub)
    _add_predict(sub)
    _add_bench(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs ``bsnn ARGS``; returns the exit status (2 for a user error, reported in one line)."""
    from bsnn_jax.train.config import ConfigError
    from bsnn_jax.train.overrides import split_override_args

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        rest, overrides = split_override_args(argv)
    except ConfigError as e:
        parser.error(str(e))
    args = parser.parse_args(rest)
    if overrides and args.command != "train":
        parser.error(f"--config.KEY overrides are only for 'bsnn train', got {['--config.' + k for k, _ in overrides]}")
    args.overrides = overrides
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130
    except _user_errors() as error:
        if _debugging(args):
            raise
        _report_error(error, args.command)
        return USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
