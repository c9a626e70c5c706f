"""`--help` explains: every option has a description (its dataclass field's docstring), each command's help says
what it does, gives an example that parses, and where its results go; a misspelt option gets the closest name;
an error about a default names the option the user gave."""

import re

import pytest

from phasediag import cli
from phasediag.run.config import ConfigError, RunConfig, flat_fields, parse


def help_of(command: str, capsys) -> str:
    with pytest.raises(SystemExit) as done:
        cli.main([command, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def descriptions(text: str) -> dict[str, str]:
    """option -> its description in the help text (the signature and the '(type: ..., default: ...)' left out)."""
    options = re.split(r"\n(?:positional arguments|options):\n", text, maxsplit=1)[1]
    out = {}
    for block in re.split(r"\n  (?=--?\w|\w)", "\n" + options)[1:]:
        name = re.match(r"-*(\w+)", block).group(1)
        words = " ".join(block.split())
        words = re.sub(r"^-*\w+( [A-Z_]+| \{[^}]*\}| \[ITEM,\.\.\.\])?", "", words)
        out[name] = re.sub(r"\((required, )?type: .*\)$", "", words).strip()
    out.pop("h", None)  # -h, --help
    return out


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_option_of_every_command_has_a_description(command, capsys):
    found = descriptions(help_of(command, capsys))
    assert set(found) == set(flat_fields(cli.COMMANDS[command][0])), command
    bare = [name for name, text in found.items() if len(text.split()) < 3]
    assert not bare, f"phasediag {command} --help: no description for {', '.join('--' + n for n in bare)}"


def test_descriptions_give_units_and_what_0_and_null_mean(capsys):
    search = descriptions(help_of("search", capsys))
    for name in ("x_min", "x_max", "x_start", "resolution"):
        assert "log2 c" in search[name], name
    for name in ("subset", "batch_size", "measure_examples"):
        assert "0 =" in search[name], name
    for name in ("storage", "eps", "x_start"):
        assert "null =" in search[name], name
    assert "tiny" in search["preset"] and "paper" in search["preset"]


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_each_command_says_what_it_does_an_example_and_where_results_go(command, capsys):
    text = help_of(command, capsys)
    head = text.split("\noptions:\n", 1)[0]
    what = cli.COMMANDS[command][0].__doc__.split()[0]
    example = re.search(r"example:\n  (phasediag .*)\n", head)
    assert what in head and example and "results:" in head, head
    assert example.group(1).split()[1] == command
    cli.parse(example.group(1).split()[1:])  # the example is a valid command line


def test_results_name_the_tracking_store_and_the_optuna_storage(capsys):
    text = " ".join(help_of("search", capsys).split())
    for words in ("MLFLOW_TRACKING_URI", "./mlflow.db", "./mlruns", "optuna.db"):
        assert words in text


@pytest.mark.parametrize(
    "argv, words",
    [
        (["run", "--widht", "8"], "unknown option --widht: did you mean --width?"),
        (["search", "--xmax", "3"], "unknown option --xmax: did you mean --x_max?"),
        (["diagram", "--experiment", "e", "--ot", "o"], "unknown option --ot: did you mean --out?"),
        (["run", "--zzzz", "1"], "unknown option --zzzz: --help lists the options"),
    ],
)
def test_a_misspelt_option_gets_the_closest_name(store, capsys, argv, words):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"phasediag: error: {words}", err


def test_a_misspelt_parameter_in_a_yaml_or_mlflow_run_gets_the_closest_name():
    with pytest.raises(ConfigError, match=r"^unknown parameter 'widht': did you mean width\?$"):
        parse(RunConfig, {"widht": 8})


@pytest.mark.parametrize(
    "argv, start",
    [
        (["search", "--x_min", "11"], "x_min=11.0 clashes with the default x_max=10.0"),
        (["saturation", "--window", "3"], "window=3 clashes with the default polyorder=3"),
        (["search", "--x_min", "2", "--x_max", "1"], "x_max=1.0 is not allowed: it must be > x_min=2.0"),
    ],
)
def test_errors_name_the_option_the_user_gave(store, capsys, argv, start):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"phasediag: error: {start}") and len(err.splitlines()) == 1, err
