"""The CLI's fixed cost: what a command imports before it does any work.

``pushgate verify`` of 100,000 small files is measured against ``sha256sum``; the interpreter
start and imports are part of it. Each test runs the real CLI in a fresh interpreter and looks at
``sys.modules`` when it is done.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import cli, make_model_dir
from pushgate.cli import COMMAND_MODULES, _Parser, build_parser

#: runs pushgate.cli.main(argv), then writes the imported modules' names to stderr's last line
_RUN_AND_LIST = (
    "import json, sys\n"
    "from pushgate.cli import main\n"
    "try:\n"
    "    code = main(sys.argv[1:])\n"
    "except SystemExit as e:\n"
    "    code = e.code\n"
    "sys.stdout.flush()\n"
    "sys.stderr.write('\\n' + json.dumps({'code': code, 'modules': sorted(sys.modules)}) + '\\n')\n"
)

#: what parsing may import: the CLI itself and the light modules its options come from
PARSING_MAY_IMPORT = {
    "pushgate",
    "pushgate.errors",
    "pushgate.secrets",
    "pushgate.progress",
    "pushgate.hook",  # --hook-timeout's default and help
    "pushgate.metrics",  # evaluate's --task and --runner choices
}

#: never imported by the CLI's start: third-party runtimes and clients, and the network
HEAVY = (
    "tensorflow",
    "numpy",
    "obstore",
    "onnxruntime",
    "apache_beam",
    "sklearn",
    "boto3",
    "google",
    "urllib.request",
    "http.client",
)


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


ALL_COMMANDS = list(_commands(build_parser()))


def _imports(*args: str | Path) -> tuple[int, set[str], subprocess.CompletedProcess[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", _RUN_AND_LIST, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    doc = json.loads(proc.stderr.strip().splitlines()[-1])
    return doc["code"], set(doc["modules"]), proc


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY)


@pytest.mark.parametrize(
    "argv",
    [["--version"], ["--help"], ["-h", "verify"]] + [[c, "--help"] for c in ALL_COMMANDS],
    ids=lambda a: " ".join(a),
)
def test_help_and_version_import_no_command_machinery(argv: list[str]) -> None:
    """Asking for help or the version parses and prints: no journal, destination, evaluator,
    serving client or runtime is imported (each is imported inside the command that runs it)."""
    code, modules, proc = _imports(*argv)
    assert code == 0, proc.stderr
    assert "pushgate" in proc.stdout
    extra = sorted(
        m
        for m in modules
        if m.startswith("pushgate.")
        and not m.startswith("pushgate.cli")
        and m not in PARSING_MAY_IMPORT
    )
    assert extra == [], f"{' '.join(argv)} imported {extra}: import them inside the handler"
    assert _heavy(modules) == []


def test_a_command_registers_only_its_own_module() -> None:
    """``pushgate verify ...`` builds verify's parser, not evaluate's or push's."""
    _, modules, _ = _imports("verify", "--help")
    cli_modules = {m for m in modules if m.startswith("pushgate.cli.")}
    assert "pushgate.cli.lifecycle" in cli_modules
    assert not cli_modules & {"pushgate.cli.evaluate", "pushgate.cli.push", "pushgate.cli.demo"}


def test_verify_imports_only_what_verifying_needs(tmp_path: Path) -> None:
    model = make_model_dir(tmp_path / "model")
    base = tmp_path / "base"
    pushed = cli("push", "--model", model, "--to", base)
    assert pushed.returncode == 0, pushed.stderr
    version = next(p.name for p in base.iterdir() if p.name.isdigit())
    code, modules, proc = _imports("verify", base, version)
    assert code == 0, proc.stderr
    assert "all versions match their records" in proc.stdout
    assert "pushgate.lifecycle" in modules and "pushgate.journal" in modules
    unneeded = {
        "pushgate.labels",  # prune's, through the serving clients
        "pushgate.serving",
        "pushgate.evaluator",
        "pushgate.examples",
        "pushgate.runtime",
        "pushgate.infra_validator",
        "pushgate.thresholds",
        "pushgate.pushing",
    }
    assert sorted(modules & unneeded) == []
    assert _heavy(modules) == []


def _registered(module: str) -> list[str]:
    import importlib

    parser = _Parser(prog="pushgate")
    sub = parser.add_subparsers(dest="command")
    importlib.import_module(f"pushgate.cli.{module}").register(sub)
    return list(sub.choices)


def test_the_command_table_is_what_each_module_registers() -> None:
    """``COMMAND_MODULES`` says which module to load for a command: it must not go stale."""
    for module, commands in COMMAND_MODULES.items():
        assert tuple(_registered(module)) == commands, module
    assert [c for commands in COMMAND_MODULES.values() for c in commands] == ALL_COMMANDS


@pytest.mark.parametrize("command", ALL_COMMANDS)
def test_a_commands_own_parser_is_the_full_parsers(command: str) -> None:
    """The parser built for one command prints and parses that command as the full one does."""
    full, own = _commands(build_parser())[command], _commands(build_parser(command))[command]
    assert own.format_help() == full.format_help()
    assert [(a.dest, a.option_strings, a.default, a.choices) for a in own._actions] == [
        (a.dest, a.option_strings, a.default, a.choices) for a in full._actions
    ]
