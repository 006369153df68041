"""The ``napari-unet`` command line: segment, train, evaluate, info, cache.

Every command reports bad input as one line on stderr and a non-zero exit
status (2 for usage and input errors, 130 when interrupted), never a
traceback, and never overwrites an existing output unless ``--overwrite`` is
given. Each command lives in its own module of this package.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import cache, evaluate, models, segment, train
from ._common import CLIError, first_line

__all__ = ["CLIError", "build_parser", "main"]

#: Set to 1 to get a traceback for unexpected errors.
DEBUG_ENV = "NAPARI_UNET_DEBUG"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage dump), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``napari-unet`` console script."""
    parser = _Parser(prog="napari-unet",
                     description="U-Net segmentation of microscopy images, headless.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in (segment, train, evaluate, models, cache):
        module.add_parser(sub)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``napari-unet`` console script.

    Returns
    -------
    int
        0 on success, 2 for bad input or a failed run, 130 when interrupted.
    """
    # Keep TensorFlow's start-up chatter out of the one-line messages.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, or a usage error already printed as one line
        return int(stop.code or 0)
    from ..cancel import Cancelled
    from ..model_io import ModelFileError

    prefix = f"napari-unet {args.command}"
    try:
        return args.func(args)
    except (CLIError, ModelFileError, ValueError, OSError, MemoryError, RuntimeError) as err:
        # OSError: missing/locked files, full disks, unreachable schedulers.
        print(f"{prefix}: error: {first_line(err)}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Cancelled):
        print(f"{prefix}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        print(f"{prefix}: error: {type(err).__name__}: {first_line(err)} (set {DEBUG_ENV}=1 "
              "for the traceback)", file=sys.stderr)
        return 2
