"""What a user meets around the core: missing extras and credentials, file modes, usage, pipes,
and a README whose synopses match the parser."""

from __future__ import annotations

import argparse
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import cli, make_model_dir
from pushgate.cli import build_parser
from pushgate.demo import BUNDLED_MODEL
from servers import S3Server, free_port

ROOT = Path(__file__).resolve().parent.parent

# Runs the CLI with some top-level modules made unimportable, as when an extra is not installed.
HIDE_AND_RUN = """
import importlib.abc, sys
hidden = set(sys.argv[1].split(","))
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in hidden:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Hide())
from pushgate.cli import main
sys.exit(main(sys.argv[2:]))
"""


def cli_without(modules: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", HIDE_AND_RUN, modules, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


# -- 16: missing extras and credentials ---------------------------------------------------------
@pytest.mark.parametrize("option", ["--model", "--model-blessing", "--infra-blessing"])
def test_s3_inputs_without_the_s3_extra_give_the_install_hint(tmp_path: Path, option: str) -> None:
    model = make_model_dir(tmp_path / "m")
    args = ["--model", model] if option != "--model" else []
    proc = cli_without("obstore", "push", option, "s3://pipeline/x", *args, "--to", tmp_path / "s")
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'pushgate[s3]'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "s").exists()


def test_infra_validate_without_numpy_is_exit_2_and_writes_no_verdict(tmp_path: Path) -> None:
    # sitecustomize hides numpy in pushgate's process and in every worker it starts
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        HIDE_AND_RUN.split("from pushgate")[0].replace('set(sys.argv[1].split(","))', '{"numpy"}')
    )
    env = {"PYTHONPATH": os.pathsep.join([str(site), str(ROOT / "src")])}
    probe = subprocess.run(
        [sys.executable, "-c", "import numpy"],
        env={**os.environ, **env},
        capture_output=True,
        check=False,
    )
    assert probe.returncode != 0  # numpy really is hidden
    out = tmp_path / "blessing"
    proc = cli("infra-validate", "--model", BUNDLED_MODEL, "--output", out, env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "numpy" in proc.stderr and "pip install 'pushgate[tensorflow]'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def _aws_free_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        HOME=str(tmp_path),
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        **extra,
    )
    return env


def test_no_aws_credentials_anywhere_says_so_and_where_they_are_looked_for(
    s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = s3_server.make_bucket()
    env = _aws_free_env(
        tmp_path,
        AWS_ENDPOINT_URL=s3_server.endpoint,
        AWS_REGION="us-east-1",
        # the instance metadata service, here a closed local port (never the real 169.254...)
        AWS_METADATA_ENDPOINT=f"http://127.0.0.1:{free_port()}",
    )
    for args in (
        ["versions", f"s3://{bucket}/m"],
        ["push", "--model", make_model_dir(tmp_path / "m"), "--to", f"s3://{bucket}/m"],
    ):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pushgate",
                *map(str, args),
                "--storage-option",
                "max_retries=0",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert proc.returncode == 2, proc.stderr
        assert "no AWS credentials were found" in proc.stderr
        for where in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "~/.aws/credentials", "metadata"):
            assert where in proc.stderr


@pytest.fixture(scope="module")
def strict_s3() -> Iterator[str]:
    """A moto S3 server that checks signatures: every key is unknown to it, so wrong."""
    port = free_port()
    code = (
        "import sys, time\n"
        "from moto.server import ThreadedMotoServer\n"
        f"s = ThreadedMotoServer(ip_address='127.0.0.1', port={port}, verbose=False)\n"
        "s.start(); print('up', flush=True); time.sleep(3600)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"up"
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


def test_wrong_keys_give_one_line_from_versions_and_from_reading_a_blessing(
    strict_s3: str, tmp_path: Path
) -> None:
    env = _aws_free_env(
        tmp_path,
        AWS_ENDPOINT_URL=strict_s3,
        AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="AKIAWRONGWRONGWRONG1",
        AWS_SECRET_ACCESS_KEY="wrong/secret/key/for/the/test/only/0000",
    )
    model = make_model_dir(tmp_path / "m")
    for args in (
        ["versions", "s3://serving/m"],
        ["push", "--model", model, "--model-blessing", "s3://pipeline/bl", "--to", tmp_path / "s"],
        ["push", "--model", model, "--to", "s3://serving/m"],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "pushgate", *map(str, args)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("pushgate: error:"), proc.stderr
        assert "access denied" in lines[0] and "InvalidAccessKeyId" in lines[0]
        assert "<" not in lines[0] and "RequestId" not in lines[0]
        assert "wrong/secret" not in proc.stderr


# -- 17: small things a user hits -----------------------------------------------------------------
def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_pushgate_writes_follow_the_umask(tmp_path: Path) -> None:
    model = make_model_dir(tmp_path / "m")
    (tmp_path / "metrics.json").write_text('{"accuracy": 0.9}')
    (tmp_path / "t.json").write_text('{"metrics": {"accuracy": {"value": {"lower": 0.5}}}}')

    def run(*args: str | Path) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "pushgate", *map(str, args)],
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=lambda: os.umask(0o002),
        )
        assert proc.returncode == 0, proc.stderr

    run(
        "evaluate",
        "--candidate-metrics",
        tmp_path / "metrics.json",
        "--thresholds",
        tmp_path / "t.json",
        "--output",
        tmp_path / "blessing",
    )
    run(
        "push",
        "--model",
        model,
        "--model-blessing",
        tmp_path / "blessing",
        "--to",
        tmp_path / "s",
        "--pushed-model",
        tmp_path / "pushed",
    )
    written = [
        tmp_path / "blessing" / "BLESSED",
        tmp_path / "blessing" / ".pushgate-artifact.json",
        tmp_path / "blessing" / "evaluation.json",
        tmp_path / "blessing" / "evaluation.txt",
        tmp_path / "pushed" / ".pushgate-artifact.json",
    ]
    assert {p.name: oct(_mode(p)) for p in written} == {p.name: "0o664" for p in written}


def test_an_unknown_option_shows_the_usage_of_its_command(tmp_path: Path) -> None:
    proc = cli("versions", tmp_path, "--no-such-option")
    assert proc.returncode == 2
    assert "usage: pushgate versions" in proc.stderr
    assert "unrecognized arguments: --no-such-option" in proc.stderr
    proc = cli("push", "--to", tmp_path, "--colour")
    assert proc.returncode == 2 and "usage: pushgate push" in proc.stderr


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path: Path) -> None:
    model = make_model_dir(tmp_path / "m")
    base = tmp_path / "s"
    assert cli("push", "--model", model, "--to", base).returncode == 0
    for args in (["versions", base], ["history", base], ["versions", base, "--json"]):
        proc = subprocess.Popen(
            [sys.executable, "-m", "pushgate", *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # as `| head` does once it has its lines
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 141, err
        assert err == ""


def test_push_and_demo_say_where_the_pushed_model_artifact_was_written(tmp_path: Path) -> None:
    model = make_model_dir(tmp_path / "m")
    pushed = tmp_path / "Pusher" / "pushed_model" / "5"
    proc = cli("push", "--model", model, "--to", tmp_path / "s", "--pushed-model", pushed)
    assert proc.returncode == 0, proc.stderr
    assert f"pushed model artifact: {pushed}" in proc.stdout
    demo = cli("demo", tmp_path / "demo")
    assert demo.returncode == 0, demo.stderr
    written = tmp_path / "demo" / "pipeline" / "Pusher" / "pushed_model" / "5"
    assert f"PushedModel artifact written to {written}" in demo.stdout
    assert (written / ".pushgate-artifact.json").is_file()


# -- the README ---------------------------------------------------------------------------------
def _readme_synopses() -> dict[str, str]:
    """``pushgate COMMAND ...`` lines of the README's code blocks (continuations joined)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    out: dict[str, str] = {}
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            m = re.match(r"\s*(?:\$\s+)?pushgate ([a-z-]+)\b(.*)", line)
            if m:
                out[m.group(1)] = out.get(m.group(1), "") + " " + m.group(2)
    return out


def test_every_option_of_every_command_is_in_its_readme_synopsis() -> None:
    synopses = _readme_synopses()
    missing = []
    for name, parser in _subparsers().items():
        assert name in synopses, f"the README has no synopsis for pushgate {name}"
        for action in parser._actions:
            for opt in action.option_strings:
                documented = re.search(rf"{re.escape(opt)}\b(?!-)", synopses[name])
                if opt.startswith("--") and opt != "--help" and not documented:
                    missing.append(f"{name} {opt}")
    assert not missing, f"options missing from the README's synopses: {missing}"


def test_the_test_commands_prerequisites_are_stated_next_to_it() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    at = text.index("bash scripts/test.sh")
    near = text[max(0, at - 600) : at]
    assert "npm" in near and "Node" in near and "Azurite" in near
