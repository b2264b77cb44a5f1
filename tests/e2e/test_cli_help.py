"""Help texts that match the program (#19): every command and sub-command ends its --help with an
example that parses, examples point at the model file the demo really writes, every option with a
default shows it, ``--version``, ``-q/-v`` after the sub-command, ``train --backbone list``."""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys

import pytest

from eacfer.commands.cli import build_parser, main, sub_parsers

PARSER = build_parser()
COMMANDS = {"eacfer": PARSER, **sub_parsers(PARSER)}


def _examples(help_text: str) -> list[list[str]]:
    """The command lines after the final ``example:``/``examples:`` of a help text."""
    m = list(re.finditer(r"^examples?:", help_text, flags=re.M))
    assert m, "no example"
    block = help_text[m[-1].end():]
    lines = [ln.strip() for ln in block.splitlines() if ln.strip()]
    cmds = []
    for ln in lines:
        # "eacfer demo --out runs/demo   (then: eacfer predict ...)": each eacfer command line in the text
        for part in re.split(r"\(then:|\)$", ln):
            part = part.strip().rstrip(")")
            if part.startswith("eacfer "):
                cmds.append(shlex.split(part, comments=True))
    return cmds


def test_every_command_is_walked():
    names = set(COMMANDS)
    assert {"eacfer", "eacfer train", "eacfer eval", "eacfer predict", "eacfer video", "eacfer export", "eacfer ui",
            "eacfer bench", "eacfer bench noisy", "eacfer bench efficiency", "eacfer bench report", "eacfer demo",
            "eacfer synth", "eacfer weights"} <= names


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_ends_with_a_working_example(name):
    text = COMMANDS[name].format_help()
    last = [ln for ln in text.splitlines() if ln.strip()]
    tail = "\n".join(last[-4:])
    assert re.search(r"^examples?:", tail, flags=re.M), f"{name} --help does not end with an example:\n{tail}"
    cmds = _examples(text)
    assert cmds, name
    words = name.split()[1:]
    assert any(c[1:1 + len(words)] == words for c in cmds), f"no example of `{name}` itself: {cmds}"
    for cmd in cmds:
        assert cmd[0] == "eacfer"
        try:
            build_parser().parse_args(cmd[1:])  # the example is accepted by the real parser
        except SystemExit as e:
            pytest.fail(f"{name}: example {shlex.join(cmd)} does not parse (exit {e.code})")


def test_examples_name_the_model_the_demo_writes():
    demo_out = next(a.default for a in COMMANDS["eacfer demo"]._actions if a.dest == "out")
    demo_model = f"{demo_out}/run/model.pt"  # eacfer.demo.run_demo: OUT/run is the training run folder
    seen = 0
    for name, p in COMMANDS.items():
        for cmd in _examples(p.format_help()):
            for word in cmd:
                if word.startswith(demo_out + "/") and word.endswith((".pt", ".onnx")):
                    assert word == demo_model, f"{name}: example names {word}, the demo writes {demo_model}"
                    seen += 1
    assert seen >= 3  # predict, export, ui (and the top-level help)


def test_demo_writes_its_model_where_the_examples_say():
    import inspect

    from eacfer import demo

    assert 'out / "run"' in inspect.getsource(demo)  # (run_demo hands the work to _run_demo)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_has_help_and_shows_its_default(name):
    p = COMMANDS[name]
    fmt = p._get_formatter()
    for a in p._actions:
        if not a.option_strings or isinstance(a, (argparse._HelpAction, argparse._VersionAction)):
            continue
        assert a.help and a.help.strip(), f"{name} {a.option_strings[0]}: no help text"
        has_value = a.default is not None and not isinstance(a.default, bool) and a.default not in (argparse.SUPPRESS, [])
        if has_value:
            shown = fmt._get_help_string(a) % {"default": a.default, "prog": p.prog}
            assert "default" in shown.lower(), f"{name} {a.option_strings[0]}: default {a.default!r} not shown"


def test_train_help_shows_the_recipe_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for flag, value in (("--batch-size", "32"), ("--lr", "0.0001"), ("--weight-decay", "0.0001"),
                        ("--gamma", "0.9"), ("--lam", "5.0"), ("--image-size", "224"), ("--seed", "0"),
                        ("--workers", "2"), ("--epochs", "60")):
        m = re.search(re.escape(flag) + r" [A-Z_]+ (.*?)(?= --[a-z]|$)", out)
        assert m and f"default: {value}" in m.group(1), (flag, m and m.group(1))


def test_eval_help_explains_split_batch_size_workers(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert re.search(r"--split SPLIT split to evaluate: .*\(default: test\)", out)
    assert re.search(r"--batch-size BATCH_SIZE images per evaluation batch \(default: 64\)", out)
    assert re.search(r"--workers WORKERS DataLoader worker processes .*\(default: 0\)", out)


def test_version(capsys):
    from eacfer import __version__

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"eacfer {__version__}"


@pytest.mark.parametrize("argv, quiet, verbose", [
    (["-q", "synth", "x"], True, False),
    (["synth", "x", "-q"], True, False),
    (["synth", "x", "--verbose"], False, True),
    (["-v", "synth", "x"], False, True),
    (["-q", "synth", "x", "-v"], True, True),  # an option after the sub-command does not undo one before it
    (["bench", "report", "--inputs", "a", "--out", "b", "-q"], True, False),
    (["synth", "x"], False, False),
])
def test_quiet_and_verbose_after_the_sub_command(argv, quiet, verbose):
    args = build_parser().parse_args(argv)
    assert (args.quiet, args.verbose) == (quiet, verbose)


def test_quiet_after_train_silences_the_progress(synth_rafdb, tmp_path):
    from eacfer.commands.train import config_from_args

    args = build_parser().parse_args(["train", "--data", str(synth_rafdb), "--backbone", "resnet18",
                                      "--out", str(tmp_path / "r"), "-q"])
    assert config_from_args(args).progress is False


def test_train_backbone_list_needs_no_data_or_out():
    from eacfer.models import list_backbones

    p = subprocess.run([sys.executable, "-m", "eacfer", "train", "--backbone", "list"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == list(list_backbones())


def test_train_without_data_still_fails_clearly(capsys):
    rc = main(["train", "--backbone", "resnet18"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "required: --data, --out" in err


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_text_has_no_doubled_percent_or_default(name):
    """Help is read by people: "99%" (not argparse's escape "99%%"), a default shown once (not "(32) (default: 32)")."""
    text = " ".join(COMMANDS[name].format_help().split())
    assert "%%" not in text, name
    doubled = re.findall(r"\(([^()]+)\) \(default: \1\)", text)
    assert not doubled, f"{name}: default shown twice: {doubled}"


@pytest.mark.parametrize(("typo", "meant"), [("evaluate", "eval"), ("predcit", "predict")])
def test_a_mistyped_command_gets_did_you_mean(typo, meant, capsys):
    with pytest.raises(SystemExit) as e:
        main([typo])
    assert e.value.code == 2
    assert f"did you mean {meant!r}?" in capsys.readouterr().err


def test_a_failed_run_leaves_no_empty_out_folder_but_keeps_an_existing_one(tmp_path, capsys):
    out = tmp_path / "runs" / "new"
    assert main(["bench", "noisy", "--data", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "dataset folder not found" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # created by the failed command, empty: removed, parents too
    mine = tmp_path / "mine"
    mine.mkdir()
    assert main(["bench", "noisy", "--data", str(tmp_path / "missing"), "--out", str(mine)]) == 2
    assert mine.is_dir()  # the user's folder: never removed
