"""The ResNet50 pipeline's own commands, added to ``flowgraph`` through the ``flowgraph.commands``
entry point: ``flowgraph data synth`` and ``flowgraph model build``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from flowgraph.cli import EXIT_OK, console

__all__ = ["register"]


def register(commands: Any) -> None:
    p = commands.add_parser("data", help="datasets")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    s = data_sub.add_parser("synth", help="write a synthetic ImageNet-style folder of JPEGs with val_map.txt")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--count", type=int, default=64)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(handler=_synth)

    p = commands.add_parser("model", help="models")
    model_sub = p.add_subparsers(dest="model_command", required=True)
    b = model_sub.add_parser("build", help="write a ResNet50 ONNX model with deterministic random weights")
    b.add_argument("arch", choices=("resnet50",))
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--variant", choices=("full", "pruned"), default="full")
    b.add_argument("--seed", type=int, default=0)
    b.set_defaults(handler=_build_model)


def _synth(args: argparse.Namespace) -> int:
    from .dataset import write_synthetic_dataset

    folder = write_synthetic_dataset(args.out, args.count, seed=args.seed, progress=lambda i, n: None)
    console.print(f"wrote {args.count} JPEGs and val_map.txt to {folder}")
    return EXIT_OK


def _build_model(args: argparse.Namespace) -> int:
    from .inference.resnet50_onnx import build_resnet50

    path = build_resnet50(args.out, variant=args.variant, seed=args.seed)
    console.print(f"wrote ResNet50 ({args.variant}) to {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return EXIT_OK
