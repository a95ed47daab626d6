"""The `aisaac` command."""
from __future__ import annotations

import argparse
import sys
from typing import Callable


def count(what: str, minimum: int = 1) -> Callable[[str], int]:
    """An argparse `type`: a whole number >= `minimum`, refused while parsing (before any data loads)."""
    def parse(text: str) -> int:
        from .runtime.args import whole_number
        try: value = int(text)
        except ValueError: raise argparse.ArgumentTypeError(f"the value must be a whole number; got {text!r}.") from None
        try: return whole_number("the value", value, minimum=minimum, what=what)
        except ValueError as e: raise argparse.ArgumentTypeError(str(e)) from None
    return parse


def learning_rate(text: str) -> float:
    """An argparse `type`: a finite number > 0."""
    from .runtime.optimizers import check_lr
    try: return check_lr(float(text))
    except ValueError: raise argparse.ArgumentTypeError(f"the learning rate must be a number > 0 and finite (for "
                                                        f"example 1e-3); got {text!r}.") from None


def main(argv: list[str] | None = None) -> int:
    from . import __version__
    from .exceptions import CheckpointError
    p = argparse.ArgumentParser(prog="aisaac", description="AIsaac: a PyTorch trainer made of callbacks.")
    p.add_argument("--version", action="version", version=f"aisaac {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="train the tutorial's conv net with CoreCBs and save its plots")
    d.add_argument("--data", help="folder with the Fashion-MNIST idx .gz files (default: $FASHION_MNIST_DIR, then "
                                  "/usr/share/datasets/fashion-mnist; else scikit-learn's digits)")
    d.add_argument("--out", default="aisaac_out", help="folder for the plots (default: aisaac_out)")
    d.add_argument("--epochs", type=count("epochs to train"), default=3)
    d.add_argument("--bs", type=count("the batch size"), default=64, help="batch size")
    d.add_argument("--lr", type=learning_rate, default=1e-3)
    d.add_argument("--n-train", type=count("training images kept"), default=None,
                   help="use only the first N training images")
    d.add_argument("--n-test", type=count("test images kept"), default=None, help="validate on only the first N test images")
    d.add_argument("--workers", type=count("DataLoader worker processes", minimum=0), default=0,
                   help="DataLoader worker processes")
    c = sub.add_parser("consolidate", help="write a (sharded) checkpoint's model state as one plain state dict")
    c.add_argument("checkpoint", help="a sharded checkpoint folder, a checkpoint file, or a CheckpointCB folder "
                                      "(its newest)")
    c.add_argument("out", help="the file to write (load it with model.load_state_dict(torch.load(OUT, "
                               "weights_only=True)))")
    args = p.parse_args(argv)
    if args.command == "consolidate":
        from .runtime.sharded_checkpoint import consolidate
        try: print(consolidate(args.checkpoint, args.out))
        except (FileNotFoundError, CheckpointError) as e:
            print(f"aisaac consolidate: {e}", file=sys.stderr)
            return 2
    if args.command == "demo":
        from .demo import run_demo
        try:
            run_demo(args.data, args.out, args.epochs, args.bs, args.lr, args.n_train, args.workers,
                     n_test=args.n_test)
        except (FileNotFoundError, ImportError, ValueError) as e:
            print(f"aisaac demo: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
