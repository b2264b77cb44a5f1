"""``eacfer train``'s arguments are derived from :class:`TrainConfig`'s fields (issue #27): the parser and the
arguments → config mapping must stay exactly what they were when three declarations said it. The snapshot in
``fixtures/cli/train_parser_snapshot.json`` was taken from the hand-written parser before the refactor; the help texts
that list backbones and test splits keep placeholders so that adding a backbone does not break this test."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

SNAPSHOT = json.loads((Path(__file__).parents[1] / "fixtures" / "cli" / "train_parser_snapshot.json").read_text(encoding="utf-8"))


def _subparser(*names: str) -> argparse.ArgumentParser:
    from eacfer.commands.cli import build_parser

    p = build_parser()
    for name in names:
        p = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    return p


def _actions(p: argparse.ArgumentParser) -> list[dict]:
    from eacfer.training.config import eval_splits_text, pretrained_defaults_text

    group_of = {id(a): g.title for g in p._action_groups for a in g._group_actions}
    out = []
    for a in p._actions:
        if isinstance(a, argparse._HelpAction):
            continue
        # the help as argparse prints it (%(name)s filled from the action: computed texts are filled in then)
        text = a.help and (a.help % {**vars(a), "prog": p.prog} if "%(" in a.help else a.help)
        text = text and text.replace(pretrained_defaults_text(), "{PRETRAINED_DEFAULTS}").replace(
            eval_splits_text().replace("%", "%%"), "{TEST_SPLITS}")
        out.append({"option_strings": a.option_strings, "dest": a.dest, "default": a.default,
                    "choices": list(a.choices) if a.choices is not None else None, "help": text,
                    "type": getattr(a.type, "__name__", None) if a.type else None, "nargs": a.nargs,
                    "required": a.required, "metavar": a.metavar, "const": a.const, "kind": type(a).__name__,
                    "group": group_of.get(id(a))})
    return json.loads(json.dumps(out))  # tuples → lists, as in the snapshot


def test_train_parser_matches_the_snapshot_option_by_option():
    p = _subparser("train")
    assert (p.description, p.epilog) == (SNAPSHOT["train"]["description"], SNAPSHOT["train"]["epilog"])
    got = _actions(p)
    want = SNAPSHOT["train"]["actions"]
    assert [a["option_strings"] for a in got] == [a["option_strings"] for a in want]  # same flags, same order
    for g, w in zip(got, want, strict=True):
        assert g == w, w["option_strings"]


def test_bench_noisy_keeps_the_shared_wandb_options():
    got = [a for a in _actions(_subparser("bench", "noisy")) if a["group"] and a["group"].startswith("Weights")]
    assert got == SNAPSHOT["bench noisy"]["actions"]


@pytest.mark.parametrize("case", SNAPSHOT["configs"], ids=["defaults", "every-option"])
def test_arguments_map_to_the_same_train_config(case):
    from eacfer.commands.cli import build_parser
    from eacfer.commands.train import config_from_args

    assert config_from_args(build_parser().parse_args(case["argv"])).to_dict() == case["config"]


def test_every_option_field_is_laid_out_once():
    """A field declared with an Option but missing from the layout would silently have no flag."""
    from dataclasses import fields

    from eacfer.commands.train import TRAIN_OPTIONS
    from eacfer.training.config import TrainConfig

    declared = {f.name for f in fields(TrainConfig) if "cli" in f.metadata}
    assert sorted(TRAIN_OPTIONS) == sorted(declared) and len(set(TRAIN_OPTIONS)) == len(TRAIN_OPTIONS)
