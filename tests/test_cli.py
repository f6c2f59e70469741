"""The CLI as a whole: help everywhere, light imports, exit codes, the progress bar."""

from __future__ import annotations

import argparse
import os
import pty
import subprocess
import sys
from pathlib import Path

from conftest import cli, make_model_dir
from pushgate.cli import build_parser


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_command_and_option_has_help_text() -> None:
    parser = build_parser()
    commands = _subparsers(parser)
    assert {"push", "versions", "demo"} <= set(commands)
    helps = {a.dest: a.help for a in parser._actions if isinstance(a, argparse._SubParsersAction)}
    assert helps
    sub_action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for choice in sub_action._choices_actions:
        assert choice.help, f"command {choice.dest} has no help"
    for name, sub in commands.items():
        assert sub.description, f"{name} has no description"
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and action.help.strip(), (
                f"{name} {action.option_strings or action.dest}"
            )


def test_every_command_prints_help_and_exits_zero() -> None:
    for name in _subparsers(build_parser()):
        proc = cli(name, "--help")
        assert proc.returncode == 0 and "usage: pushgate" in proc.stdout, name


def test_import_pushgate_stays_light() -> None:
    code = (
        "import sys, pushgate, pushgate.cli; pushgate.cli.build_parser(); "
        "heavy = [m for m in ('tensorflow', 'obstore', 'numpy', 'onnxruntime', 'sklearn', 'boto3') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_usage_error_exits_2_without_traceback(tmp_path: Path) -> None:
    proc = cli("push", "--model", tmp_path, "--to", tmp_path / "s", "--versioning", "weekly")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
    proc = cli("push", "--model", tmp_path / "missing", "--to", tmp_path / "s", "--traceback")
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "InputError" in proc.stderr


def test_progress_bar_is_drawn_on_a_terminal_and_not_in_a_pipe(tmp_path: Path) -> None:
    model = make_model_dir(tmp_path / "m", shards=4, shard_bytes=48 * 1024 * 1024)
    args = [sys.executable, "-m", "pushgate", "push", "--model", str(model)]
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [*args, "--to", str(tmp_path / "tty")],
            stderr=follower,
            stdout=subprocess.PIPE,
            timeout=300,
            check=False,
            # every phase draws, however fast this machine copies
            env={**os.environ, "PUSHGATE_PROGRESS_DELAY": "0"},
        )
        os.close(follower)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(leader)
    assert proc.returncode == 0
    assert b"pushing" in seen and b"MiB/s" in seen
    piped = cli(
        "push", "--model", model, "--to", tmp_path / "pipe", env={"PUSHGATE_PROGRESS_DELAY": "0"}
    )
    assert piped.returncode == 0 and "MiB/s" not in piped.stderr


def test_public_names_stay_what_they_are_after_every_module_is_imported() -> None:
    """A module named like a lazily exported function would replace it on the package once
    imported (``pushgate.evaluate`` was once the function, then the module)."""
    import importlib
    import pkgutil

    import pushgate

    before = {name: getattr(pushgate, name) for name in pushgate.__all__}
    for info in pkgutil.walk_packages(pushgate.__path__, "pushgate."):
        # the TFX components import TFX by design (the main suite's environment has none)
        tfx_only = info.name in ("pushgate.tfx.component", "pushgate.tfx.executor")
        if ".runtime." not in info.name and not info.name.endswith("__main__") and not tfx_only:
            importlib.import_module(info.name)
    for name, value in before.items():
        assert getattr(pushgate, name) is value, name
