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
    except MemoryError:
        print(f"error: {OOM_ADVICE}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        if not _is_oom(e):
            raise
        print(f"error: {str(e).strip().splitlines()[0][:200]}\n{OOM_ADVICE}", file=sys.stderr)
        return 2


OOM_ADVICE = ("out of memory. Training: lower --image-memory (images are then streamed), pass --downscale 2 or "
              "lower the samples per step (--set target_samples=65536); rendering and export: a lower "
              "resolution. A run with checkpoints continues with --resume")


def _is_oom(e: RuntimeError) -> bool:
    """PyTorch's allocation failures: CUDA's OutOfMemoryError, the CPU and MPS allocators' messages."""
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    text = str(e).lower()
    return (oom is not None and isinstance(e, oom)) or "out of memory" in text or "can't allocate memory" in text


if __name__ == "__main__":
    sys.exit(main())
