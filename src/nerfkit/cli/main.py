"""``nerfkit`` console script. Each command lives in its own module with a ``register(sub)``."""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from ..errors import NerfkitError

# command modules, in the order ``nerfkit --help`` lists them
COMMANDS = ("demo", "train", "eval", "render", "export", "process", "view")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nerfkit", description="Neural radiance fields: train, evaluate, render.")
    sub = p.add_subparsers(dest="command", required=True)
    for name in COMMANDS:  # each module imports its heavy dependencies inside its command
        importlib.import_module(f".{name}", __package__).register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.formatwarning = lambda msg, cat, *_: f"warning: {msg}\n"
    try:
        return args.func(args)
    except NerfkitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
