# ruff: noqa: F811  (pytest fixtures imported from servers.py are parameters here)
"""Nothing destroyed, nothing written outside what pushgate owns (issue 9): the locations a user
gives, links planted inside BASE, a journal that cannot be written after a publish, a full disk
while writing a record, version numbers past int64, and clear errors instead of tracebacks.

Everything runs the real CLI on real directories (and a real S3 server for buckets); a full disk
is a small tmpfs and an unreadable file a mode-000 file read from a user namespace, where root's
privileges do not apply to it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import blessing, cli, cli_json, make_model_dir, numeric_dirs, tfx_model
from pushgate.destination import open_destination
from pushgate.pushed_model import write_pushed_model
from pushgate.remote import materialize, upload_tree
from pushgate.source import list_files
from servers import StoreURL, s3_server, store_url  # noqa: F401  (fixtures)

MAX = 2**63 - 1


def push_one(model: Path, base: Path, seed: int) -> None:
    proc = cli("push", "--model", make_model_dir(model, seed=seed), "--to", base)
    assert proc.returncode == 0, proc.stderr


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (links as their target text, files as their sha256)."""
    out: dict[str, str] = {}
    for dirpath, dirs, names in os.walk(root):
        for name in dirs + names:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_file():
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[rel] = "dir"
    return out


def run(
    *args: str | Path, cwd: Path | None = None, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """The real CLI, from ``cwd``, optionally under a wrapper such as ``unshare -U``."""
    return subprocess.run(
        [*prefix, sys.executable, "-m", "pushgate", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def refused(proc: subprocess.CompletedProcess[str], *named: str | Path) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    for n in named:
        assert str(n) in proc.stderr, proc.stderr


def user_files(root: Path) -> Path:
    """A folder of the user's own files."""
    (root / "sub").mkdir(parents=True)
    (root / "notes.txt").write_text("mine")
    (root / "sub" / "data.csv").write_text("1,2,3")
    return root


# -- 1. --pushed-model never destroys what pushgate did not write --------------------------------
@pytest.mark.parametrize("verdict", ["blessed", "not_blessed"])
@pytest.mark.parametrize(
    "target", ["user-folder", "other-base", "the-model", "inside-model", "inside-base", "blessing"]
)
def test_pushed_model_never_replaces_what_pushgate_did_not_write(
    tmp_path: Path, target: str, verdict: str
) -> None:
    model = tfx_model(tmp_path / "model")
    mb = blessing(tmp_path / "mb", "model", verdict)
    other = tmp_path / "other-base"
    assert cli("push", "--model", make_model_dir(tmp_path / "m2"), "--to", other).returncode == 0
    user = user_files(tmp_path / "mine")
    base = tmp_path / "serving"
    pm = {
        "user-folder": user,
        "other-base": other,
        "the-model": model,
        "inside-model": model / "Format-Serving" / "pushed",
        "inside-base": base / "pushed",
        "blessing": tmp_path / "mb",
    }[target]
    before = {p: snapshot(p) for p in (model, other, user, tmp_path / "mb")}
    proc = cli("push", "--model", model, "--model-blessing", mb, "--to", base, "--pushed-model", pm)
    refused(proc, pm)
    assert {p: snapshot(p) for p in before} == before
    assert not base.exists()  # refused before any destination is touched


def test_pushed_model_is_never_the_filesystem_root(tmp_path: Path) -> None:
    """Checked on the location rule itself, which reads nothing: the CLI form of this test once
    ran against the old code and emptied this machine's /etc, so "/" is never handed to a push."""
    from pushgate.errors import InputError
    from pushgate.location import check_push_locations

    model = make_model_dir(tmp_path / "model")
    for root in ("/", "//", "/."):
        with pytest.raises(InputError, match="root"):
            check_push_locations(
                model=model,
                infra_blessing=None,
                model_blessing=None,
                bases=[str(tmp_path / "s")],
                pushed_model=root,
            )


@pytest.mark.parametrize("given", ["", "."])
def test_pushed_model_is_never_here_or_a_root(tmp_path: Path, given: str) -> None:
    here = user_files(tmp_path / "cwd")
    model = make_model_dir(tmp_path / "model")
    before = snapshot(here)
    proc = run("push", "--model", model, "--to", tmp_path / "s", "--pushed-model", given, cwd=here)
    refused(proc, "--pushed-model")
    assert snapshot(here) == before and not (tmp_path / "s").exists()


def test_pushed_model_nested_around_the_model_is_refused(tmp_path: Path) -> None:
    model = make_model_dir(tmp_path / "work" / "model")
    proc = cli("push", "--model", model, "--to", tmp_path / "s", "--pushed-model", tmp_path)
    refused(proc, model, tmp_path)
    assert (model / "saved_model.pb").exists()


def test_pushed_model_replaces_its_own_earlier_artifact(tmp_path: Path) -> None:
    pm = tmp_path / "pushed"
    base = tmp_path / "s"
    one = make_model_dir(tmp_path / "one", seed=1, shards=3)
    two = make_model_dir(tmp_path / "two", seed=2, shards=1)
    assert cli("push", "--model", one, "--to", base, "--pushed-model", pm).returncode == 0
    code, out = cli_json("push", "--model", two, "--to", base, "--pushed-model", pm)
    assert code == 0 and out["pushed"]
    got = snapshot(pm)
    got.pop(".pushgate-artifact.json")
    assert got == snapshot(two)
    assert not [p for p in tmp_path.iterdir() if ".pushgate-" in p.name]  # no swap debris


def test_a_pushed_model_holding_files_it_does_not_list_is_not_replaced(tmp_path: Path) -> None:
    pm = tmp_path / "pushed"
    base = tmp_path / "s"
    assert cli("push", "--model", make_model_dir(tmp_path / "one"), "--to", base, "--pushed-model",
               pm).returncode == 0  # fmt: skip
    (pm / "variables" / "my-notes.txt").write_text("mine")  # dropped in by the user later
    before = snapshot(pm)
    proc = cli("push", "--model", make_model_dir(tmp_path / "two", seed=2), "--to", base,
               "--pushed-model", pm)  # fmt: skip
    refused(proc, pm, "variables/my-notes.txt")
    assert snapshot(pm) == before


def test_a_failed_pushed_model_write_leaves_the_earlier_one_whole(tmp_path: Path) -> None:
    """The new artifact is written beside the old one and swapped in: a full disk half way
    leaves the old one as it was (it used to be emptied first)."""
    model_a = make_model_dir(tmp_path / "a", seed=1, shards=1, shard_bytes=1024 * 1024)
    model_b = make_model_dir(tmp_path / "b", seed=2, shards=1, shard_bytes=1024 * 1024)
    small = tmp_path / "small"
    small.mkdir()
    pm = small / "pushed"
    base = tmp_path / "s"
    script = (
        f"mount -t tmpfs -o size=1600k tmpfs {small}; set +e; "
        f"{sys.executable} -m pushgate push --model {model_a} --to {base} --pushed-model {pm} "
        f">/dev/null || exit 90; "
        f"sha256sum {pm}/variables/* {pm}/saved_model.pb > {tmp_path}/before.txt; "
        f"{sys.executable} -m pushgate push --model {model_b} --to {base} --pushed-model {pm}; "
        f"rc=$?; sha256sum {pm}/variables/* {pm}/saved_model.pb > {tmp_path}/after.txt; "
        f"cat {pm}/.pushgate-artifact.json; ls -a {small}; exit $rc"
    )
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-ec", script], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and str(pm) in proc.stderr
    before = (tmp_path / "before.txt").read_text()
    assert before and (tmp_path / "after.txt").read_text() == before
    assert '"pushed_version"' in proc.stdout  # the old properties, still there
    assert ".pushgate-new" not in proc.stdout  # the half-written new copy was removed


def test_pushed_model_on_a_bucket_root_or_foreign_prefix_is_refused(
    store_url: Callable[[str], StoreURL], tmp_path: Path
) -> None:
    s = store_url("s3")
    bucket = s.base.split("/")[2]
    upload_tree(user_files(tmp_path / "mine"), f"s3://{bucket}/data", s.options)
    model = make_model_dir(tmp_path / "model")
    for pm in (f"s3://{bucket}", f"s3://{bucket}/", f"s3://{bucket}/data"):
        proc = cli("push", "--model", model, "--to", s.base, "--pushed-model", pm, env=s.env)
        refused(proc, pm.rstrip("/"))
        with materialize(f"s3://{bucket}/data", s.options) as local:
            assert snapshot(local) == snapshot(tmp_path / "mine")
    assert open_destination(s.base, s.options).numeric_children() == []


def test_pushed_model_on_a_bucket_deletes_only_its_own_listed_files(
    store_url: Callable[[str], StoreURL], tmp_path: Path
) -> None:
    s = store_url("s3")
    url = s.base.rsplit("/", 1)[0] + "/PushedModel"
    one = make_model_dir(tmp_path / "one", seed=1, shards=3)
    two = make_model_dir(tmp_path / "two", seed=2, shards=1)
    write_pushed_model(url, list_files(one), {"pushed": 1}, s.options)
    # something of the user's lands under the artifact's prefix later: it is not the artifact's
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "README.md").write_text("kept")
    upload_tree(tmp_path / "extra", url, s.options)
    write_pushed_model(url, list_files(two), {"pushed": 1}, s.options)
    with materialize(url, s.options) as local:
        got = snapshot(local)
    assert got.pop("README.md") == hashlib.sha256(b"kept").hexdigest()
    got.pop(".pushgate-artifact.json")
    assert got == snapshot(two)  # the shards only the old model had are gone


# -- 2. links planted inside BASE never redirect a write or a delete -----------------------------
@pytest.mark.parametrize("inside", ["staging", "trash", "records", "events", "claims", ""])
def test_a_link_inside_the_journal_is_refused_and_never_followed(
    tmp_path: Path, inside: str
) -> None:
    base = tmp_path / "s"
    push_one(tmp_path / "m0", base, seed=0)
    push_one(tmp_path / "m1", base, seed=1)  # two versions: the prune below has one to remove
    victim = tmp_path / "victim"
    # what debris of pushgate's would look like: a stale staging copy, a hidden version
    (victim / "1-deadbeef0000" / "variables").mkdir(parents=True)
    (victim / "1-deadbeef0000" / "saved_model.pb").write_text("keep me")
    (victim / "staging" / "2-deadbeef0000").mkdir(parents=True)
    (victim / "staging" / "2-deadbeef0000" / "keep.txt").write_text("keep me")
    (victim / "keep.txt").write_text("keep me")
    link = base / ".pushgate" / inside if inside else base / ".pushgate"
    if inside:
        if link.exists():
            os.rename(link, tmp_path / "moved-aside")
    else:
        os.rename(link, victim / "real-journal")
    os.symlink(victim, link)
    before = snapshot(victim)
    for args in (
        ("push", "--model", make_model_dir(tmp_path / "m2", seed=2), "--to", base),
        ("prune", base, "--keep", "1"),
    ):
        proc = cli(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert str(link) in proc.stderr and "symbolic link" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
        assert snapshot(victim) == before, args


def test_a_version_that_is_a_link_is_removed_as_a_link_never_its_target(tmp_path: Path) -> None:
    base = tmp_path / "s"
    code, first = cli_json("push", "--model", make_model_dir(tmp_path / "m1", seed=1), "--to", base)
    assert code == 0
    outside = tmp_path / "outside"
    os.rename(base / first["version"], outside)  # the version is now a link to a real copy
    os.symlink(outside, base / first["version"])
    before = snapshot(outside)
    push_one(tmp_path / "m2", base, seed=2)
    proc = cli("prune", base, "--keep", "1")
    assert proc.returncode == 0, proc.stderr
    assert snapshot(outside) == before
    assert not os.path.lexists(base / first["version"])
    trash = base / ".pushgate" / "trash"
    assert not trash.exists() or list(trash.iterdir()) == []  # the link itself is gone


@pytest.mark.parametrize(
    "rel", ["", "/etc/passwd", "../outside", "a/../../b", "a//b", "./a", "a/./b", "a/"]
)
def test_a_record_path_outside_its_version_is_never_used(tmp_path: Path, rel: str) -> None:
    """A record edited to list ``../../secret`` (or any path that is not plain and relative):
    verify reports it as damage (exit 3) and reads nothing outside the version."""
    from pushgate.errors import IntegrityError

    base = tmp_path / "s"
    code, out = cli_json("push", "--model", make_model_dir(tmp_path / "m"), "--to", base)
    assert code == 0
    dest = open_destination(str(base))
    with pytest.raises(IntegrityError, match="unsafe path"):
        dest.open_version_file(out["version"], rel)
    record = base / ".pushgate" / "records" / f"{out['version']}.json"
    doc = json.loads(record.read_text())
    doc["manifest"]["files"][0]["path"] = rel
    record.write_text(json.dumps(doc))
    proc = cli("verify", base)
    assert proc.returncode == 3 and "unsafe path" in proc.stdout + proc.stderr, proc


def test_a_fifo_inside_a_version_is_reported_not_waited_on(tmp_path: Path) -> None:
    base = tmp_path / "s"
    model = make_model_dir(tmp_path / "m")
    (model / "assets" / "empty.txt").write_bytes(b"")
    code, out = cli_json("push", "--model", model, "--to", base)
    assert code == 0
    fifo = base / out["version"] / "assets" / "empty.txt"  # size 0: only reading can tell
    fifo.unlink()
    os.mkfifo(fifo)
    proc = cli("verify", base, timeout=60)
    assert proc.returncode == 3, (proc.stdout, proc.stderr)
    assert "assets/empty.txt" in proc.stdout + proc.stderr


# -- 3. empty paths, and a BASE that does not exist ----------------------------------------------
@pytest.mark.parametrize("flag", ["--model", "--to", "--model-blessing", "--infra-blessing"])
def test_an_empty_path_is_a_usage_error(tmp_path: Path, flag: str) -> None:
    here = user_files(tmp_path / "cwd")
    before = snapshot(here)
    args = {"--model": str(make_model_dir(tmp_path / "m")), "--to": str(tmp_path / "s")}
    args[flag] = ""
    proc = run("push", *[x for kv in args.items() for x in kv], cwd=here)
    refused(proc)
    assert "empty" in proc.stderr
    assert snapshot(here) == before and not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    "command",
    [
        ("versions",),
        ("history",),
        ("verify",),
        ("rollback",),
        ("prune", "--keep", "1"),
        ("pin", "1"),
        ("unpin", "1"),
        ("status",),
    ],
)
def test_every_command_but_push_refuses_a_base_that_does_not_exist(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    typo = tmp_path / "servng"
    proc = cli(command[0], typo, *command[1:])
    refused(proc, typo)
    assert "no BASE at" in proc.stderr
    assert not typo.exists()


def test_a_bucket_base_that_does_not_exist_is_refused(
    store_url: Callable[[str], StoreURL],
) -> None:
    s = store_url("s3")
    for command in (("versions", s.base), ("prune", s.base, "--keep", "1")):
        proc = cli(*command, env=s.env)
        refused(proc, s.base)


# -- 4. the model and BASE nested in each other ----------------------------------------------------
@pytest.mark.parametrize("layout", ["same", "base-inside-model", "model-inside-base", "two-bases"])
def test_model_and_base_nested_in_each_other_are_refused(tmp_path: Path, layout: str) -> None:
    model = make_model_dir(tmp_path / "x")
    bases = {
        "same": [model],
        "base-inside-model": [model / "serving"],
        "model-inside-base": [tmp_path],
        "two-bases": [tmp_path / "a", tmp_path / "a" / "b"],
    }[layout]
    before = snapshot(tmp_path)
    proc = cli("push", "--model", model, *[x for b in bases for x in ("--to", b)])
    refused(proc, bases[-1])
    if layout != "two-bases":
        assert str(model) in proc.stderr
    assert snapshot(tmp_path) == before


# -- 7. a journal event that cannot be written after the publish ----------------------------------
def test_a_failed_journal_event_after_publish_is_a_warning_and_is_repaired(tmp_path: Path) -> None:
    base = tmp_path / "s"
    push_one(tmp_path / "m1", base, seed=1)
    log = base / ".pushgate" / "log"  # the event log: day directories under log/
    shards = [log, *log.iterdir()]
    for d in shards:
        os.chmod(d, 0o555)  # owner may not write: in a user namespace root is only the owner
    pm = tmp_path / "pushed"
    hook_out = tmp_path / "hook.txt"
    try:
        proc = run(
            "push", "--model", make_model_dir(tmp_path / "m2", seed=2), "--to", base,
            "--pushed-model", pm, "--on-publish", f"echo $PUSHGATE_VERSION > {hook_out}",
            "--json", prefix=("unshare", "-U"),
        )  # fmt: skip
    finally:
        for d in shards:
            os.chmod(d, 0o755)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    out = json.loads(proc.stdout)
    version = out["version"]
    assert out["pushed"] and numeric_dirs(base)[-1] == version
    assert any("event could not be written" in w for w in out["warnings"]), out["warnings"]
    assert hook_out.read_text().strip() == version  # the hook ran
    props = json.loads((pm / ".pushgate-artifact.json").read_text())["properties"]
    assert props["pushed_version"] == version  # the PushedModel was written
    doc = _pending_event_is_written_late(tmp_path, base, version, "push")
    assert doc["version"] == version


def _pending_event_is_written_late(
    tmp_path: Path, base: Path, version: str, kind: str
) -> dict[str, Any]:
    """The ``kind`` event of ``version`` waits in pending-events/; a later push (its writer is
    long gone: the pending event is made a minute old) writes it, marked ``written_late``."""
    pending = base / ".pushgate" / "pending-events" / f"{version}.json"
    doc: dict[str, Any] = json.loads(pending.read_text())
    assert doc["event"] == kind
    pending.write_text(json.dumps({**doc, "at": "2026-01-01T00:00:00.000000Z"}))
    code, again = cli_json("push", "--model", make_model_dir(tmp_path / "m3", seed=3), "--to", base)
    assert code == 0
    assert (
        f"wrote the missing {kind} event of version {version}"
        in again["destinations"][0]["recovered"]
    )
    code, hist = cli_json("history", base)
    late = [e for e in hist["events"] if e.get("version") == version and e["event"] == kind]
    assert len(late) == 1 and late[0]["written_late"] is True
    assert not list((base / ".pushgate" / "pending-events").iterdir())
    return doc


def test_a_failed_journal_event_after_a_rollback_is_a_warning_and_is_repaired(
    tmp_path: Path,
) -> None:
    """Rollback shares push's pending-event path: once its version is published, an event that
    cannot be written is a warning (exit 0), and a later command writes it."""
    base = tmp_path / "s"
    push_one(tmp_path / "m1", base, seed=1)
    first = numeric_dirs(base)[-1]
    push_one(tmp_path / "m2", base, seed=2)
    log = base / ".pushgate" / "log"
    shards = [log, *log.iterdir()]
    for d in shards:
        os.chmod(d, 0o555)
    try:
        proc = run("rollback", base, "--to", first, "--json", prefix=("unshare", "-U"))
    finally:
        for d in shards:
            os.chmod(d, 0o755)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    out = json.loads(proc.stdout)
    version = out["version"]
    assert numeric_dirs(base)[-1] == version
    assert any("event could not be written" in w for w in out["warnings"]), out["warnings"]
    doc = _pending_event_is_written_late(tmp_path, base, version, "rollback")
    assert doc["rollback_to"] == first


# -- 8. a full disk while writing a journal file --------------------------------------------------
def test_disk_full_while_writing_the_journal_leaves_no_temporary_file(tmp_path: Path) -> None:
    model = make_model_dir(tmp_path / "m", shards=1, shard_bytes=4096)
    fs = tmp_path / "fs"
    fs.mkdir()
    base = fs / "base"
    script = (
        f"mount -t tmpfs -o size=1m tmpfs {fs}; "
        f"{sys.executable} -m pushgate push --model {model} --to {base} > /dev/null; "
        f"dd if=/dev/zero of={fs}/filler bs=4k 2>/dev/null || true; set +e; "
        f"{sys.executable} -m pushgate push --model {model} --to {base} --json; rc=$?; "
        f"echo LISTING; find {base}/.pushgate -name '.tmp-*'; exit $rc"
    )
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-ec", script], capture_output=True, text=True, timeout=300
    )
    out, listing = proc.stdout.split("LISTING", 1)
    assert listing.split() == [], listing  # the half-written event file was removed
    assert proc.returncode == 0, proc.stderr  # nothing changed: an unchanged re-push stands
    assert json.loads(out)["already_present"] is True


def test_recover_removes_stale_temporary_journal_files(tmp_path: Path) -> None:
    base = tmp_path / "s"
    push_one(tmp_path / "m1", base, seed=1)
    stale = base / ".pushgate" / "records" / ".tmp-0123456789abcdef-1.json"
    stale.write_text('{"half": ')
    os.utime(stale, (1, 1))
    code, out = cli_json("push", "--model", make_model_dir(tmp_path / "m2", seed=2), "--to", base)
    assert code == 0 and not stale.exists()
    assert any(str(stale) in line for line in out["destinations"][0]["recovered"])


# -- 10. version numbers past TF Serving's int64 --------------------------------------------------
@pytest.mark.parametrize("stray", [str(MAX), str(MAX + 1), "99999999999999999999999"])
def test_a_numeric_directory_past_int64_is_flagged_and_ignored(tmp_path: Path, stray: str) -> None:
    base = tmp_path / "s"
    (base / stray).mkdir(parents=True)
    code, out = cli_json(
        "push", "--model", make_model_dir(tmp_path / "m"), "--to", base, "--versioning",
        "sequential",
    )  # fmt: skip
    assert code == 0, out
    assert out["version"] == "1"
    assert any(stray in w and "int64" in w for w in out["warnings"]), out["warnings"]
    assert (base / stray).is_dir()  # not pushgate's: left alone


def test_no_version_at_or_past_int64_is_ever_produced(tmp_path: Path) -> None:
    base = tmp_path / "s"
    (base / str(MAX - 1)).mkdir(parents=True)
    proc = cli("push", "--model", make_model_dir(tmp_path / "m"), "--to", base)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert str(MAX) in proc.stderr
    assert numeric_dirs(base) == [str(MAX - 1)]


# -- 15. clear errors instead of tracebacks -------------------------------------------------------
@pytest.mark.parametrize("which", [".pushgate", ".pushgate/records"])
def test_a_file_where_the_journal_keeps_a_directory_is_named(tmp_path: Path, which: str) -> None:
    base = tmp_path / "s"
    push_one(tmp_path / "m1", base, seed=1)
    target = base / which
    os.rename(target, tmp_path / "aside")
    target.write_text("not a directory")
    for args in (
        ("push", "--model", make_model_dir(tmp_path / "m2", seed=2), "--to", base),
        ("versions", base),
        ("history", base),
    ):
        if args[0] in ("history", "versions") and which.endswith("records"):
            continue  # history reads only events; versions the index (records when it lags)
        proc = cli(*args)
        refused(proc, target)
        assert "not a directory" in proc.stderr
    assert target.read_text() == "not a directory"


def test_an_unreadable_model_file_is_named_and_leaves_no_claim(tmp_path: Path) -> None:
    model = make_model_dir(tmp_path / "m")
    locked = model / "variables" / "variables.index"
    os.chmod(locked, 0)
    base = tmp_path / "s"
    base.mkdir()
    proc = run("push", "--model", model, "--to", base, prefix=("unshare", "-U"))
    refused(proc, locked)
    claims = base / ".pushgate" / "claims"
    assert not claims.exists() or list(claims.iterdir()) == []
    assert numeric_dirs(base) == []


def test_recover_reports_only_what_it_really_removed(tmp_path: Path) -> None:
    base = tmp_path / "s"
    push_one(tmp_path / "m1", base, seed=1)
    # a prune killed after hiding a version: debris in the trash, part of it not removable
    stuck = base / ".pushgate" / "trash" / "5-0badc0de" / "variables"
    stuck.mkdir(parents=True)
    (stuck / "shard").write_text("x")
    os.chmod(stuck, 0o555)  # its entries cannot be removed by the owner
    try:
        proc = run(
            "push", "--model", make_model_dir(tmp_path / "m2", seed=2), "--to", base, "--json",
            prefix=("unshare", "-U"),
        )  # fmt: skip
    finally:
        os.chmod(stuck, 0o755)
    assert proc.returncode == 0, proc.stderr
    lines = json.loads(proc.stdout)["destinations"][0]["recovered"]
    assert not [line for line in lines if line.startswith("removed half-deleted")], lines
    assert any(x.startswith("could not remove half-deleted version 5-0badc0de") for x in lines)
