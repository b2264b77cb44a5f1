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
    "calibrate": "calibrate",
    "synth": "synth",
    "demo": "demo",
    "predict": "predict",
    "video": "video",
    "export": "export",
    "ui": "ui",
    "bench": "bench",
    "weights": "weights",
    "serve": "serve",
}


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


#: the packages only ``pip install 'eacfer[train]'`` brings (pyproject.toml); a command that needs one of them
#: fails with one line naming the extra, not with an import traceback
TRAINING_PACKAGES = ("torch", "torchvision")


def needs_training_extra(error: BaseException) -> bool:
    """Whether ``error`` is an import of a training-only package (torch, torchvision) that is not installed.

    Example:
        >>> needs_training_extra(ModuleNotFoundError("No module named 'torch'", name="torch"))
        True
        >>> needs_training_extra(ModuleNotFoundError("No module named 'av'", name="av"))
        False
    """
    name = getattr(error, "name", None) or ""
    return isinstance(error, ImportError) and name.split(".")[0] in TRAINING_PACKAGES


def training_extra_message(command: str) -> str:
    """The one-line error of a command run without the training extra.

    Example:
        >>> training_extra_message("train")
        "eacfer train needs the training extra: pip install 'eacfer[train]'"
    """
    return f"eacfer {command} needs the training extra: pip install 'eacfer[train]'"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions and epilogs (the examples) as written, and shows every option's default.

    argparse's ArgumentDefaultsHelpFormatter would repeat the defaults many help texts already state
    ("(default 17)"), and print "None"/"False" for options that have no default value; this adds
    ``(default: X)`` only where the help does not mention a default and there is a value to show.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        if not text or "default" in text.lower() or not action.option_strings:
            return text
        if action.default is None or isinstance(action.default, bool) or action.default in (argparse.SUPPRESS, []):
            return text  # nothing to show (``0 in (False,)`` is true, hence the isinstance)
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with :class:`HelpFormatter` for every command and sub-command."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs["formatter_class"] = HelpFormatter  # one style everywhere (overrides per-command choices)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def _check_value(self, action: argparse.Action, value: object) -> None:
        """argparse's check, plus "did you mean 'eval'?" for a mistyped command or choice (Python < 3.14
        has no ``suggest_on_error``)."""
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError as e:
            import difflib

            close = difflib.get_close_matches(str(value), [str(c) for c in action.choices or ()], n=1, cutoff=0.5)
            if not close:
                raise
            raise argparse.ArgumentError(action, f"{e.message}; did you mean {close[0]!r}?") from None


def _add_log_options(p: argparse.ArgumentParser, default: object = False) -> None:
    # default=SUPPRESS after the sub-command: an absent -q/-v there must not undo one given before it
    p.add_argument("-v", "--verbose", action="store_true", default=default,
                   help="debug logging, including the face detector's own log lines")
    p.add_argument("-q", "--quiet", action="store_true", default=default,
                   help="warnings and errors only (no progress)")


def sub_parsers(parser: argparse.ArgumentParser, prefix: str = "eacfer") -> dict[str, argparse.ArgumentParser]:
    """Every command and sub-command parser, by its command line (``"eacfer bench noisy"``).

    Example:
        >>> sorted(sub_parsers(build_parser()))[:2]
        ['eacfer bench', 'eacfer bench compare']
    """
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found[f"{prefix} {name}"] = child
                found.update(sub_parsers(child, f"{prefix} {name}"))
    return found


def build_parser() -> argparse.ArgumentParser:
    from eacfer import __version__

    parser = Parser(prog="eacfer", description="Facial emotion recognition with EAC.",
                    epilog="example: eacfer demo --out runs/demo   (then: eacfer predict photo.jpg "
                    "--checkpoint runs/demo/run/model.pt --out out/pred)")
    parser.add_argument("--version", action="version", version=f"eacfer {__version__}")
    _add_log_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for modname in COMMANDS.values():
        try:
            mod = importlib.import_module(f"eacfer.commands.{modname}")
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith("eacfer.commands"):
                continue  # command not built yet
            raise
        mod.add_parser(sub)
    for child in sub_parsers(parser).values():  # -q / -v also after the sub-command
        _add_log_options(child, default=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``eacfer`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command line, e.g. to print how to resume
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if hasattr(sys.stdout, "reconfigure"):  # a file name that is not UTF-8 is printed as its own bytes, as ls does
        sys.stdout.reconfigure(errors="surrogateescape")
    made = _missing_folders(getattr(args, "out", None))
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ImportError as e:
        # a runtime-only install (no torch) running a command that trains, exports or loads a .pt model
        if not needs_training_extra(e) or args.verbose:
            raise
        _remove_if_empty(made)
        print(training_extra_message(args.command), file=sys.stderr)
        return 2
    except (CLIError, FileNotFoundError, NotADirectoryError, IsADirectoryError, ValueError, KeyError, OSError) as e:
        # Expected failures (bad arguments, missing or broken files) are one line, never a traceback.
        _remove_if_empty(made)
        if args.verbose:
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"eacfer {args.command}: error: {msg}", file=sys.stderr)
        return 2
    return int(rc or 0)


def _missing_folders(out: object) -> list[str]:
    """``--out`` and those of its parents that do not exist yet (deepest first): a failed command removes the
    ones it created and left empty, and nothing else."""
    import os

    if not isinstance(out, str) or not out:
        return []
    missing, path = [], os.path.abspath(out)
    while path and not os.path.lexists(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return missing


def _remove_if_empty(folders: list[str]) -> None:
    import os

    for folder in folders:  # deepest first; rmdir refuses a folder that is not empty
        try:
            os.rmdir(folder)
        except OSError:  # not empty (then neither are its parents) or already removed by the job itself
            continue


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
