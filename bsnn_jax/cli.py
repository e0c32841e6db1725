"""The ``bsnn`` command line."""

from __future__ import annotations

import argparse
import json
import sys

from flax import nnx
from rich.console import Console
from rich.table import Table

from bsnn_jax import models
from bsnn_jax.metrics import model_size


def _shape(text: str) -> tuple[int, int, int]:
    try:
        h, w, c = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected H,W,C such as 32,32,3, got {text!r}") from None
    return h, w, c


def _report(args: argparse.Namespace) -> int:
    # eval_shape: counting ResNet-18's 11.7M parameters needs no memory and no initialisation.
    model = nnx.eval_shape(
        lambda: models.create(
            args.model,
            variant=args.variant,
            num_classes=args.num_classes,
            timesteps=args.timesteps,
            input_shape=args.input_shape,
        )
    )
    report = model_size(model)
    if args.json:
        print(json.dumps({"model": args.model, "variant": args.variant, **report.to_dict()}, indent=2))
        return 0
    table = Table(title=f"{args.model} ({args.variant}), T={args.timesteps}: size as the papers count it")
    for col, justify in [("layer", "left"), ("shape", "left"), ("bits/weight", "right"), ("params", "right"), ("bytes", "right")]:
        table.add_column(col, justify=justify)
    for r in report.rows:
        table.add_row(r.path, "x".join(map(str, r.shape)), str(r.bits), f"{r.params:,}", f"{r.bytes:,.0f}")
    table.add_section()
    table.add_row("total", "", "", f"{report.total_params:,}", f"{report.total_bytes:,.0f}")
    console = Console()
    console.print(table)
    console.print(
        f"total parameters {report.total_params:,} ({report.binary_params:,} binary), "
        f"size {report.size_mb:.2f} MB (1 bit per binary weight, 32 per other, MB = 10^6 bytes)"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bsnn", description="Binary spiking neural networks in JAX.")
    sub = parser.add_subparsers(dest="command", required=True)
    report = sub.add_parser("report", help="per-layer parameter and size table of a model")
    report.add_argument("--model", required=True, choices=sorted(models.FAMILIES))
    report.add_argument("--variant", default="agmm", choices=sorted(models.VARIANTS))
    report.add_argument("--num-classes", type=int, default=None, help="classifier width (family default)")
    report.add_argument("--timesteps", type=int, default=4, help="T (AGMM keeps one alpha per step)")
    report.add_argument("--input-shape", type=_shape, default=None, help="H,W,C of one frame")
    report.add_argument("--json", action="store_true", help="print JSON instead of a table")
    report.set_defaults(run=_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
