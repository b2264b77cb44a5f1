"""``eacfer`` command line: a thin layer over the Python API.

Each sub-command lives in its own module under :mod:`eacfer.commands` exposing
``add_parser(subparsers)`` (which sets ``func``); arguments are parsed only here.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# sub-command name -> module in eacfer.commands
COMMANDS = {
    "train": "train",
    "eval": "evaluate",
    "synth": "synth",
    "demo": "demo",
    "predict": "predict",
    "video": "video",
    "export": "export",
    "ui": "ui",
    "bench": "bench",
    "weights": "weights",
}


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eacfer", description="Facial emotion recognition with EAC.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for modname in COMMANDS.values():
        try:
            mod = importlib.import_module(f"eacfer.commands.{modname}")
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith("eacfer.commands"):
                continue  # command not built yet
            raise
        mod.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``eacfer`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (CLIError, FileNotFoundError, NotADirectoryError, IsADirectoryError, ValueError, KeyError, OSError) as e:
        # Expected failures (bad arguments, missing or broken files) are one line, never a traceback.
        if args.verbose:
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"eacfer {args.command}: error: {msg}", file=sys.stderr)
        return 2
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
