"""The ``--on-publish`` hook (waited for, timed, its output kept as a bounded tail) and the one
scrubber every message and journal event goes through."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import cli, cli_json, make_model_dir
from pushgate.secrets import MASK, Scrubber, environment_secrets, remember_options, scrub


def _event_files(base: Path) -> list[Path]:
    """Every journal event file under BASE, whatever the journal layout (``log/`` or the older
    ``events/``)."""
    meta = base / ".pushgate"
    return sorted(p for d in ("log", "events") for p in (meta / d).rglob("*.json"))


def _events(base: Path, kind: str) -> list[dict]:
    docs = [json.loads(p.read_text()) for p in _event_files(base)]
    return [d for d in docs if d.get("event") == kind]


def test_a_hook_that_starts_a_background_process_does_not_hold_the_push(tmp_path: Path) -> None:
    model = make_model_dir(tmp_path / "m")
    pidfile = tmp_path / "bg.pid"
    hook = f"sleep 120 & echo $! > {pidfile}; echo started"
    try:
        start = time.monotonic()
        # 60 s: the old push waited for the background sleep's copy of the output pipe (120 s)
        proc = cli(
            "push",
            "--model",
            model,
            "--to",
            tmp_path / "s",
            "--on-publish",
            hook,
            "--json",
            timeout=60,
        )
        took = time.monotonic() - start
    finally:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
    assert proc.returncode == 0, proc.stderr
    hook_result = json.loads(proc.stdout)["destinations"][0]["hook"]
    assert hook_result["ok"] is True and hook_result["output"] == "started\n"
    assert took < 50
    assert _events(tmp_path / "s", "hook")[0]["ok"] is True


def test_hook_timeout_is_an_option_and_a_hook_past_it_is_killed_and_recorded_failed(
    tmp_path: Path,
) -> None:
    model = make_model_dir(tmp_path / "m")
    marker = tmp_path / "survived"
    hook = f"echo going; sleep 30; touch {marker}"
    start = time.monotonic()
    code, doc = cli_json(
        "push",
        "--model",
        model,
        "--to",
        tmp_path / "s",
        "--on-publish",
        hook,
        "--hook-timeout",
        "1.5",
    )
    assert code == 0 and doc["pushed"]
    assert time.monotonic() - start < 25
    result = doc["destinations"][0]["hook"]
    assert result["ok"] is False and result["exit_code"] is None
    assert "timed out after 1.5 s" in result["error"] and result["output"] == "going\n"
    assert any("timed out" in w for w in doc["warnings"])
    assert "timed out" in _events(tmp_path / "s", "hook")[0]["error"]
    time.sleep(0.5)
    assert not marker.exists()  # the whole hook, its sleep included, was killed
    bad = cli("push", "--model", model, "--to", tmp_path / "s", "--hook-timeout", "0")
    assert bad.returncode == 2 and "--hook-timeout" in bad.stderr


def test_rollback_takes_the_hook_timeout_too(tmp_path: Path) -> None:
    base = tmp_path / "s"
    for seed in (1, 2):
        assert (
            cli(
                "push", "--model", make_model_dir(tmp_path / f"m{seed}", seed=seed), "--to", base
            ).returncode
            == 0
        )
    code, doc = cli_json("rollback", base, "--on-publish", "sleep 30", "--hook-timeout", "1")
    assert code == 0, doc
    assert doc["hook"]["ok"] is False and "timed out after 1 s" in doc["hook"]["error"]


def test_hook_output_is_kept_as_a_bounded_tail_recorded_and_shown_on_failure(
    tmp_path: Path,
) -> None:
    model = make_model_dir(tmp_path / "m")
    # 200 MB of chatter, then the line that says what went wrong; the old push held it all
    hook = "head -c 200000000 /dev/zero | tr '\\0' 'x'; echo; echo 'the reload failed' >&2; exit 4"
    wrapper = (
        "import resource, subprocess, sys\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "print(p.returncode); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.stderr.write(p.stderr)\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            wrapper,
            sys.executable,
            "-m",
            "pushgate",
            "push",
            "--model",
            str(model),
            "--to",
            str(tmp_path / "s"),
            "--on-publish",
            hook,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ},
    )
    code, max_rss_kib = (int(v) for v in proc.stdout.split())
    assert code == 0
    assert max_rss_kib < 150 * 1024, f"{max_rss_kib / 1024:.0f} MiB"
    assert "the reload failed" in proc.stderr and "exit code 4" in proc.stderr
    assert "output of the --on-publish hook" in proc.stderr
    (event,) = _events(tmp_path / "s", "hook")
    assert event["ok"] is False and event["exit_code"] == 4
    assert event["output"].endswith("the reload failed\n")
    assert len(event["output"]) <= 64 * 1024 + 64 and "earlier output cut" in event["output"]


def test_a_successful_hooks_output_is_kept(tmp_path: Path) -> None:
    code, doc = cli_json(
        "push",
        "--model",
        make_model_dir(tmp_path / "m"),
        "--to",
        tmp_path / "s",
        "--on-publish",
        "echo reloaded $PUSHGATE_VERSION",
    )
    assert code == 0
    version = doc["version"]
    assert doc["destinations"][0]["hook"]["output"] == f"reloaded {version}\n"
    assert _events(tmp_path / "s", "hook")[0]["output"] == f"reloaded {version}\n"


SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "AWS_SESSION_TOKEN": "FwoGZXIvYXdzEXAMPLESESSIONTOKEN0123456789",
    "MY_DEPLOY_TOKEN": "ghp_exampletokenexampletoken12345",
    "AZURE_STORAGE_CONNECTION_STRING": "DefaultEndpointsProtocol=https;AccountName=acct;"
    "AccountKey=c2VjcmV0YWNjb3VudGtleWV4YW1wbGU=;EndpointSuffix=core.windows.net",
}


def test_a_failing_hooks_secrets_are_scrubbed_from_output_json_and_journal(
    tmp_path: Path,
) -> None:
    hook = (
        'echo "key=$AWS_SECRET_ACCESS_KEY token=$AWS_SESSION_TOKEN deploy=$MY_DEPLOY_TOKEN" >&2; '
        'echo "conn=$AZURE_STORAGE_CONNECTION_STRING" >&2; exit 1'
    )
    model = make_model_dir(tmp_path / "m")
    text = cli("push", "--model", model, "--to", tmp_path / "a", "--on-publish", hook, env=SECRETS)
    as_json = cli(
        "push",
        "--model",
        model,
        "--to",
        tmp_path / "b",
        "--on-publish",
        hook,
        "--json",
        env=SECRETS,
    )
    assert text.returncode == 0 and as_json.returncode == 0
    journal = "".join(p.read_text() for b in "ab" for p in _event_files(tmp_path / b))
    shown = text.stdout + text.stderr + as_json.stdout + as_json.stderr
    assert "key=***" in shown and "key=***" in journal  # the hook's line is still there
    for secret in [*SECRETS.values(), "c2VjcmV0YWNjb3VudGtleWV4YW1wbGU="]:
        assert secret not in shown
        assert secret not in journal


def test_a_mistyped_storage_option_never_echoes_its_value(tmp_path: Path) -> None:
    proc = cli(
        "versions", "s3://bucket/models", "--storage-option", "secret_access_key:hunter2-but-longer"
    )
    assert proc.returncode == 2
    assert "hunter2" not in proc.stdout + proc.stderr
    assert "secret_access_key=" in proc.stderr  # the hint names the key, never the value
    # a mistyped option name: argparse would echo every argument it does not know
    for typo in (
        ["--storage-opton", "secret_access_key=hunter2-but-longer"],
        ["--storage-opton=secret_access_key:hunter2-but-longer"],
    ):
        proc = cli("versions", tmp_path, *typo)
        assert proc.returncode == 2 and "usage: pushgate versions" in proc.stderr
        assert "hunter2" not in proc.stdout + proc.stderr and "--storage-opton" in proc.stderr


def test_the_scrubber_knows_the_environments_credential_variables() -> None:
    env = {
        **SECRETS,
        "GOOGLE_SERVICE_ACCOUNT_KEY": json.dumps(
            {
                "type": "service_account",
                "private_key_id": "abcdef0123456789abcdef",
                "private_key": "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEF\n-----END",
            }
        ),
        "SERVICE_PASSWORD": "correct-horse-battery",
        "SHORT_TOKEN": "abc",  # too short to be a secret
        "SSL_KEY_FILE": "/etc/ssl/private/key.pem",  # a path to a secret, not one
        "HOME": "/root",
    }
    found = environment_secrets(env)
    assert {
        SECRETS["AWS_SECRET_ACCESS_KEY"],
        SECRETS["MY_DEPLOY_TOKEN"],
        "c2VjcmV0YWNjb3VudGtleWV4YW1wbGU=",
        "abcdef0123456789abcdef",
        "MIIEvQIBADANBgkqhkiG9w0BAQEF",
        "correct-horse-battery",
    } <= found
    assert not {"abc", "/etc/ssl/private/key.pem", "/root"} & found
    scrub = Scrubber(found)
    text = "GET https://b.s3.amazonaws.com/k?X-Amz-Signature=deadbeef&x=1 pw=correct-horse-battery"
    assert scrub(text) == f"GET https://b.s3.amazonaws.com/k?X-Amz-Signature={MASK}&x=1 pw={MASK}"
    assert scrub("https://user:p4ssw0rd@host/x") == f"https://user:{MASK}@host/x"


def test_every_storage_option_value_is_masked_but_plainly_public_ones() -> None:
    remember_options(
        {
            "secret_access_key": "opt-secret-value-1",
            "secret_acess_key": "opt-typo-key-value-2",  # a mistyped name is still a secret
            "sas_key": "sv=2024&sig=opt-value-3",
            "endpoint": "http://127.0.0.1:9000",
            "region": "eu-west-3",
            "allow_http": "true",
        }
    )
    text = (
        "endpoint http://127.0.0.1:9000 in eu-west-3 (allow_http=true): opt-secret-value-1 "
        "opt-typo-key-value-2 sv=2024&sig=opt-value-3"
    )
    assert scrub(text) == (
        f"endpoint http://127.0.0.1:9000 in eu-west-3 (allow_http=true): {MASK} {MASK} {MASK}"
    )
