"""One push, start to end: read blessings, decide, resolve the model, then for each destination
recover, check for a duplicate, claim a version, stage, publish, record.

The order of the steps is the design (see ``docs/architecture.md``): the decision comes first and
a "do not push" touches no destination; every write to a destination goes through its
crash-safe protocol in :mod:`pushgate.destination`.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pushgate import __version__
from pushgate.artifact import PROPERTIES_FILE as PROPS
from pushgate.artifact import artifact_path, artifact_uri, set_properties, single, utc_now
from pushgate.blessing import Blessing, BlessingKind, absent, read_input_blessing
from pushgate.destination import open_destination
from pushgate.destination.base import MAX_VERSION, PENDING_EVENTS, Destination, make_token
from pushgate.errors import (
    DestinationError,
    InputError,
    PushgateError,
    UsageError,
    VersionConflictError,
)
from pushgate.gate import Decision, decide
from pushgate.hook import HOOK_TIMEOUT_S
from pushgate.journal import RECORD_SCHEMA, Journal, dumps, dumps_compact, manifest_json, who
from pushgate.location import check_push_locations
from pushgate.manifest import (
    FileEntry,
    Manifest,
    ManifestFile,
    bounded_map,
    hash_file,
    hash_threads,
)
from pushgate.progress import Progress
from pushgate.pushed_model import check_pushed_model, write_pushed_model
from pushgate.remote import is_url
from pushgate.source import (
    FORMAT_SERVING,
    SERVING_MODEL_DIR,
    STAMPED_MODEL,
    FileList,
    ModelSource,
    SourceFile,
    list_tree,
    resolve_model,
)
from pushgate.version import check_policy, next_version

CLAIM_ATTEMPTS = 64
#: a pending event older than this, of a published version, is one its pusher could not write
#: (a live pusher writes it within milliseconds of the publish: repairing a younger one could
#: write it twice)
REPAIR_PENDING_S = 60.0
#: a pending event of a version that never appeared is dropped after this long
STALE_PENDING_S = 3600.0


@dataclass(frozen=True)
class PushRequest:
    """Everything one push needs. Artifact fields take a path or a TFX-style artifact."""

    destinations: tuple[str, ...]
    model: Any = None
    model_blessing: Any = None
    infra_blessing: Any = None
    pushed_model: Any = None
    versioning: str = "auto"
    force_reason: str | None = None
    allow_duplicate: bool = False
    on_publish: str | None = None
    storage_options: Mapping[str, str] = field(default_factory=dict)
    hook_timeout: float = HOOK_TIMEOUT_S
    #: publish a model directory that matches no known layout (recorded); never a blessing
    any_model: bool = False
    #: where the push comes from when a pipeline runs it (pipeline, run, component, execution
    #: and input artifact ids), stored in the version's record
    lineage: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        # TFX hands inputs as lists; an optional input that resolved to nothing is [] (absent)
        for name in ("model", "model_blessing", "infra_blessing", "pushed_model"):
            object.__setattr__(self, name, single(getattr(self, name), name))
        if isinstance(self.destinations, (str, Path)):
            object.__setattr__(self, "destinations", (str(self.destinations),))
        object.__setattr__(self, "destinations", tuple(str(d) for d in self.destinations))
        if not self.destinations:
            raise UsageError("no destination: give --to BASE (the model's base directory or URL)")
        check_policy(self.versioning)
        if self.force_reason is not None and not self.force_reason.strip():
            raise UsageError("--force-reason needs a non-empty reason; it is recorded")
        if not self.hook_timeout > 0:
            raise UsageError(f"--hook-timeout must be positive, got {self.hook_timeout}")


@dataclass
class DestinationResult:
    """What happened at one destination."""

    url: str
    pushed: bool = False
    version: str | None = None
    destination: str | None = None
    already_present: bool = False
    digest: str | None = None
    error: str | None = None
    recovered: list[str] = field(default_factory=list)
    hook: dict[str, Any] | None = None
    #: what went wrong after the push was decided without undoing it (shown as push warnings)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "pushed": self.pushed,
            "version": self.version,
            "destination": self.destination,
            "already_present": self.already_present,
            "digest": self.digest,
            "error": self.error,
            "recovered": self.recovered,
            "hook": self.hook,
        }


@dataclass
class PushResult:
    """The outcome of a push. ``version``/``destination`` are those of the first destination."""

    pushed: bool
    reason: str
    model: str | None
    digest: str | None
    blessings: dict[str, Blessing]
    forced: bool = False
    force_reason: str | None = None
    warnings: list[str] = field(default_factory=list)
    destinations: list[DestinationResult] = field(default_factory=list)
    pushed_model: str | None = None
    model_layout: str | None = None
    model_kind: str | None = None
    any_model: bool = False
    #: ``--serve`` checks (:class:`pushgate.serving.ServeReport`), one per pushed destination
    serve: list[Any] = field(default_factory=list)

    @property
    def version(self) -> str | None:
        return self.destinations[0].version if self.destinations else None

    @property
    def destination(self) -> str | None:
        return self.destinations[0].destination if self.destinations else None

    @property
    def already_present(self) -> bool:
        return bool(self.destinations) and all(d.already_present for d in self.destinations)

    @property
    def failed(self) -> bool:
        return any(d.error for d in self.destinations) or any(not s.healthy for s in self.serve)

    def to_json(self) -> dict[str, Any]:
        return {
            "pushed": self.pushed,
            "version": self.version,
            "destination": self.destination,
            "reason": self.reason,
            "model": self.model,
            "model_layout": self.model_layout,
            "model_kind": self.model_kind,
            "any_model": self.any_model,
            "digest": self.digest,
            "blessings": {k: b.verdict.value for k, b in self.blessings.items()},
            "forced": self.forced,
            "force_reason": self.force_reason,
            "already_present": self.already_present,
            "destinations": [d.to_json() for d in self.destinations],
            "pushed_model": self.pushed_model,
            "warnings": self.warnings,
            **({"serve": [s.to_json() for s in self.serve]} if self.serve else {}),
        }


class _SourceHashes:
    """Whether the source is what a version holds, and the source's digest once known; shared
    by the destinations of a push."""

    def __init__(self, files: FileList, dirs: Sequence[str], progress: Progress) -> None:
        self.files = files
        self.dirs = tuple(dirs)
        self.progress = progress
        #: the source's digest, once a check found it identical to a version
        self.digest: str | None = None

    def matches_record(self, journal: Journal, version: str, record: dict[str, Any]) -> bool:
        """:meth:`matches` against a version's recorded manifest (popped from ``record``: the
        per-file dicts of an inline one are freed before the source is hashed). A record
        without a readable manifest matches nothing: the model is pushed as a new version."""
        try:
            with journal.manifest(version, record) as manifest:
                record.pop("manifest", None)
                return self.matches(manifest)
        except PushgateError:
            return False

    def matches(self, manifest: Manifest | ManifestFile) -> bool:
        """True when the source is byte-identical to ``manifest``; stops at the first mismatch.
        Both are read in path order, side by side: names and sizes first (no hashing), then
        the contents; nothing per file is held."""
        files = self.files
        if (manifest.count, manifest.total_bytes) != (files.count, files.total_bytes) or set(
            manifest.dirs
        ) != set(self.dirs):
            return False
        # the manifest first in each zip: a damaged one raises as it ends, before a True
        if any(e.path != f.rel or e.size != f.size for e, f in zip(manifest.entries(), files)):
            return False
        stop = threading.Event()

        def check(pair: tuple[FileEntry, SourceFile]) -> bool:
            if stop.is_set():
                return False
            if hash_file(pair[1].abspath, self.progress.advance) != pair[0].sha256:
                stop.set()
                return False
            return True

        self.progress.start("checking", files.total_bytes)
        try:
            # all() stops at the first mismatch; bounded_map then cancels the work not started
            pairs = zip(manifest.entries(), files)
            same = all(bounded_map(check, pairs, hash_threads(), cost=lambda p: p[1].size))
        finally:
            self.progress.finish()
        if same:
            self.digest = manifest.digest
        return same


def _claim(journal: Journal, policy: str, token_suffix: str) -> tuple[str, str]:
    # The versions on the store and the journal's high-water mark, not a listing of every claim
    # ever made (that grows with the history): a number claimed above them (by a push that is
    # running, or died) is refused by its create-only claim, and the next one tried.
    taken = set(int(v) for v in journal.dest.numeric_children()) | {journal.high_water()}
    candidate = next_version(policy, taken)
    for attempt in range(CLAIM_ATTEMPTS):
        token = make_token(candidate, token_suffix)
        if candidate not in taken and journal.claim(candidate, token):
            return str(candidate), token
        taken |= set(int(v) for v in journal.dest.numeric_children())
        if attempt >= 2:  # many claims above the mark: list them (rare; one listing)
            taken |= set(journal.claimed())
        taken.add(candidate)
        candidate = next_version(policy, taken)
    raise VersionConflictError(
        f"could not claim a version under {journal.dest.url} after {CLAIM_ATTEMPTS} tries; "
        "something else keeps creating versions there"
    )


def _record(
    version: str,
    dest: Destination,
    manifest: Manifest | ManifestFile,
    source: ModelSource,
    decision: Decision,
    blessings: dict[str, Blessing],
    request: PushRequest,
    previous: str | None,
    show: Callable[[Path | None], str | None],
) -> dict[str, Any]:
    return {
        "schema": RECORD_SCHEMA,
        "kind": "push",
        "version": version,
        "destination": dest.version_url(version),
        "digest": manifest.digest,
        "manifest": manifest_json(manifest, version),
        "source": {
            "path": show(source.path),
            "layout": source.layout,
            "artifact": show(source.artifact),
            "kind": source.kind,
            "any_model": source.any_model,
        },
        "blessings": {k: b.to_json() for k, b in blessings.items()},
        "decision": {
            "reason": decision.reason,
            "forced": decision.forced,
            "force_reason": request.force_reason if decision.forced else None,
        },
        "pushed_at": utc_now(),
        **who(),
        "pushgate_version": __version__,
        "previous_newest": previous,
        "versioning": request.versioning,
        **({"lineage": dict(request.lineage)} if request.lineage else {}),
    }


def publish_to(
    dest: Destination,
    files: Iterable[SourceFile],
    request: PushRequest,
    progress: Progress,
    make_record: Any,
    *,
    from_version: str | None = None,
    dirs: Sequence[str] = (),
    make_event: Callable[[str, Manifest | ManifestFile], dict[str, Any]] | None = None,
    warnings: list[str] | None = None,
) -> tuple[str, Manifest | ManifestFile]:
    """Claim, stage, publish: the crash-safe part shared by push and rollback.

    ``make_event(version, manifest)``: the journal event of the publish (``{"event": kind,
    ...fields}``). It is stored as pending before the publish and written to the journal after;
    once the version is published a failure there is no failure of the publish: it is appended
    to ``warnings``, and :func:`repair_events` writes the event later."""
    journal = Journal(dest)
    version, token = _claim(journal, request.versioning, uuid.uuid4().hex[:12])
    event: dict[str, Any] | None = None
    pending = f"{PENDING_EVENTS}/{version}.json"
    with dest.lease(token):
        total = files.total_bytes if isinstance(files, FileList) else None
        progress.start("pushing", sum(f.size for f in files) if total is None else total)
        try:
            if from_version is not None:
                staged = dest.stage_from_version(from_version, token, progress.advance, dirs)
            else:
                staged = dest.stage(files, token, progress.advance, dirs)
        finally:
            progress.finish()
        try:
            record = make_record(version, staged.manifest)
            if make_event is not None:
                event = {**make_event(version, staged.manifest), "at": utc_now()}
                # no flush: a kill keeps it (the page cache survives); a power loss before the
                # publish is durable loses the version too
                dest.write_meta(pending, dumps(event), durable=False)
            dest.publish(staged, version, dumps_compact(record))
        except BaseException:
            dest.discard(token)
            if event is not None:
                with suppress(PushgateError, OSError):
                    dest.delete_meta(pending)
            raise
    # published: a failure to update the index now only costs the next reader one record read
    with suppress(PushgateError):
        journal.save_index({version: record})
    if event is not None:
        try:
            _write_event(journal, event)
            dest.delete_meta(pending)
        except (PushgateError, OSError) as e:
            (warnings if warnings is not None else []).append(
                f"version {version} is published at {dest.version_url(version)}, but its "
                f"{event['event']} event could not be written to the journal ({e}); a later "
                "push there writes it"
            )
    return version, staged.manifest


def _write_event(journal: Journal, event: dict[str, Any], **extra: Any) -> None:
    fields = {k: v for k, v in event.items() if k not in ("event", "at")}
    journal.event(str(event["event"]), **fields, **extra)


def repair_events(dest: Destination) -> list[str]:
    """Write the journal events of published versions that a failure (a full disk, a
    permission) or a kill kept out of the journal; drop those of versions never published."""
    keys = dest.list_meta(f"{PENDING_EVENTS}/")
    if not keys:
        return []
    done: list[str] = []
    present = set(dest.numeric_children())
    journal = Journal(dest)
    for key in keys:
        version = key.rsplit("/", 1)[-1].removesuffix(".json")
        raw = dest.read_meta(key)
        try:
            event = json.loads(raw or b"")
        except ValueError:
            event = None
        if not isinstance(event, dict) or "event" not in event:
            event = None  # unreadable: dropped below
        if event is not None and version in present:
            if not _older_than(event, REPAIR_PENDING_S):
                continue  # its pusher may be writing it right now
            _write_event(journal, event, published_at=event.get("at"), written_late=True)
            dest.delete_meta(key)
            done.append(f"wrote the missing {event['event']} event of version {version}")
        elif event is None or (version not in present and _older_than(event, STALE_PENDING_S)):
            dest.delete_meta(key)
    return done


def _older_than(event: dict[str, Any], seconds: float) -> bool:
    from datetime import datetime, timezone

    try:
        at = datetime.strptime(str(event.get("at")), "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return True
    return time.time() - at.replace(tzinfo=timezone.utc).timestamp() > seconds


@dataclass
class _Plan:
    """A decided push of one resolved model, carried out per destination."""

    request: PushRequest
    source: ModelSource
    files: FileList
    dirs: tuple[str, ...]
    decision: Decision
    blessings: dict[str, Blessing]
    progress: Progress
    show: Callable[[Path | None], str | None]
    hashes: _SourceHashes = field(init=False)

    def __post_init__(self) -> None:
        self.hashes = _SourceHashes(self.files, self.dirs, self.progress)

    def push_to(self, url: str) -> DestinationResult:
        """Push to one destination; with several, an error there is reported, not raised."""
        res = DestinationResult(url=url)
        try:
            dest = open_destination(url, self.request.storage_options)
            res.url = dest.url
            self._push(dest, res)
        except PushgateError as e:
            if len(self.request.destinations) == 1:
                raise
            res.error = str(e)
            return res
        if self.request.on_publish and not res.already_present:
            from pushgate.hook import run_hook

            res.hook = run_hook(
                self.request.on_publish, dest, res, res.digest, "push", self.request.hook_timeout
            )
            if res.hook.get("journal_error"):
                res.warnings.append(
                    f"the --on-publish hook ran at {dest.url}, but its journal event could not "
                    f"be written: {res.hook['journal_error']}"
                )
        return res

    def _push(self, dest: Destination, res: DestinationResult) -> None:
        dest.check_writable()
        journal = Journal(dest)
        res.recovered = journal.recover() + repair_events(dest)
        oversized = dest.oversized_children()
        if oversized:
            res.warnings.append(
                f"{dest.url} holds numeric directories at or past TF Serving's int64 version "
                f"limit {MAX_VERSION}: {', '.join(sorted(oversized))}; no server can load them "
                "and pushgate ignores them for numbering: remove them"
            )
        newest = journal.newest_published()
        source, request, decision = self.source, self.request, self.decision
        if (
            newest is not None
            and newest.record
            and not request.allow_duplicate
            and self.hashes.matches_record(journal, newest.version, newest.record)
        ):
            res.pushed, res.already_present, res.digest = True, True, newest.record["digest"]
            res.version, res.destination = newest.version, dest.version_url(newest.version)
            try:
                journal.event(
                    "push",
                    version=newest.version,
                    digest=res.digest,
                    already_present=True,
                    flush=False,  # nothing changed: "no copy, no flush" for an unchanged re-push
                    source=self.show(source.path),
                )
            except PushgateError as e:  # nothing changed: the answer stands
                res.warnings.append(f"could not write the journal event at {dest.url}: {e}")
            return
        previous = newest.version if newest else None

        def make_record(version: str, manifest: Manifest | ManifestFile) -> dict[str, Any]:
            known = self.hashes.digest
            if known is not None and known != manifest.digest:
                raise DestinationError(
                    f"the model at {source.path} changed while it was being pushed; "
                    "push a model directory nobody is writing to"
                )
            return _record(
                version,
                dest,
                manifest,
                source,
                decision,
                self.blessings,
                request,
                previous,
                self.show,
            )

        def make_event(version: str, manifest: Manifest | ManifestFile) -> dict[str, Any]:
            return {
                "event": "push",
                "version": version,
                "digest": manifest.digest,
                "forced": decision.forced,
                "force_reason": request.force_reason if decision.forced else None,
                "previous_newest": previous,
                "source": self.show(source.path),
            }

        version, manifest = publish_to(
            dest,
            self.files,
            request,
            self.progress,
            make_record,
            dirs=self.dirs,
            make_event=make_event,
            warnings=res.warnings,
        )
        res.pushed, res.version, res.digest = True, version, manifest.digest
        res.destination = dest.version_url(version)


class _Inputs:
    """Local paths for the push's inputs. URL inputs are downloaded into temporary directories
    (removed with the push) and shown to users, and in records, by their URLs."""

    def __init__(self, request: PushRequest, progress: Progress, stack: ExitStack) -> None:
        self.options = request.storage_options
        self.progress = progress
        self.stack = stack
        self.roots: list[tuple[Path, str]] = []
        self._fetched: dict[tuple[str, tuple[str, ...] | None, tuple[str, ...]], Path] = {}

    def local(
        self,
        value: Any,
        what: str,
        only: Collection[str] | None = None,
        prefer: Collection[str] = (),
    ) -> Path | None:
        if value is None:
            return None
        uri = artifact_uri(value)
        if not is_url(uri):
            return artifact_path(value)
        key = (uri, None if only is None else tuple(only), tuple(prefer))
        if key in self._fetched:  # the same files already came down in this push
            return self._fetched[key]
        from pushgate.remote import materialize
        from pushgate.secrets import clean_url

        progress = None if only is not None else self.progress
        local: Path = self.stack.enter_context(
            materialize(
                uri, self.options, only=only, prefer=prefer, required=what, progress=progress
            )
        )
        self.roots.append((local, clean_url(uri)))
        self._fetched[key] = local
        return local

    def blessing(self, value: Any, kind: BlessingKind) -> Blessing:
        if value is None:
            return absent(kind)
        local = self.local(value, f"--{kind.value.replace('_', '-')}", (*kind.markers, PROPS))
        assert local is not None
        blessing = self.translated(lambda: read_input_blessing(value, local, kind))
        return replace(blessing, path=self.show(local))

    def show(self, path: Path | None) -> str | None:
        """``path`` as the user gave it: under a downloaded input, its URL."""
        if path is None:
            return None
        for root, url in self.roots:
            if path == root:
                return url
            if root in path.parents:
                return f"{url}/{path.relative_to(root).as_posix()}"
        return str(path)

    def translated(self, fn: Any) -> Any:
        """Run ``fn``; an input error naming a temporary directory names the URL instead."""
        try:
            return fn()
        except PushgateError as e:
            text = self.translated_text(str(e))
            if text == str(e):
                raise
            try:
                renamed = type(e)(text)
            except TypeError:  # an error class with its own arguments: keep it as it is
                raise e from None
            raise renamed from e

    def translated_text(self, text: str) -> str:
        for root, url in self.roots:
            text = text.replace(str(root), url)
        return text


def _model_description(request: PushRequest, inputs: _Inputs) -> str:
    """The model TFX would have pushed, for a refused push: nothing is downloaded for it, and a
    bad model is no reason to fail here."""
    for value, suffix in ((request.model, ""), (request.infra_blessing, f"/{STAMPED_MODEL}")):
        if value is None:
            continue
        uri = artifact_uri(value)
        if is_url(uri):
            return uri.rstrip("/") + suffix
        break
    model_path = artifact_path(request.model) if request.model is not None else None
    infra_path = (
        artifact_path(request.infra_blessing) if request.infra_blessing is not None else None
    )
    try:
        return str(resolve_model(model_path, infra_path, any_model=True)[0].path)
    except PushgateError:
        return str(model_path or (infra_path and infra_path / STAMPED_MODEL))


def _pushed_model_location(request: PushRequest) -> str | None:
    if request.pushed_model is None:
        return None
    uri = artifact_uri(request.pushed_model)
    return uri if is_url(uri) else str(artifact_path(request.pushed_model))


def push(request: PushRequest, progress: Progress | None = None) -> PushResult:
    """Push a model when its blessings allow it. See :class:`PushRequest`."""
    progress = progress or Progress()
    with ExitStack() as stack:
        return _push(request, progress, _Inputs(request, progress, stack))


def _check_readable(files: Iterable[SourceFile], show: Callable[[Path | None], str | None]) -> None:
    """Every model file can be opened, before any destination is touched: an unreadable file
    is bad input naming that file, not a failure of the copy that leaves a claim behind."""
    for f in files:
        try:
            os.close(os.open(f.abspath, os.O_RDONLY))
        except OSError as e:
            raise InputError(
                f"cannot read the model file {show(Path(f.abspath))}: {e.strerror or e}; "
                "fix its permissions (nothing was pushed)"
            ) from e


def _push(request: PushRequest, progress: Progress, inputs: _Inputs) -> PushResult:
    if request.model is None and request.infra_blessing is None:
        raise UsageError("nothing to push: give --model, or --infra-blessing with a stamped model")
    # before anything is read, downloaded or written: locations that would make the push
    # destroy something, or copy a BASE into itself
    check_push_locations(
        model=request.model,
        infra_blessing=request.infra_blessing,
        model_blessing=request.model_blessing,
        bases=request.destinations,
        pushed_model=request.pushed_model,
    )
    pushed_model = _pushed_model_location(request)
    if pushed_model is not None:
        check_pushed_model(pushed_model, request.storage_options)
    blessings = {
        BlessingKind.MODEL.value: inputs.blessing(request.model_blessing, BlessingKind.MODEL),
        BlessingKind.INFRA.value: inputs.blessing(request.infra_blessing, BlessingKind.INFRA),
    }
    decision = decide(
        blessings[BlessingKind.MODEL.value],
        blessings[BlessingKind.INFRA.value],
        force_reason=request.force_reason,
    )
    warnings = list(decision.warnings)
    options = request.storage_options

    if not decision.push:
        if pushed_model is not None:
            pushed_model = write_pushed_model(pushed_model, None, {"pushed": 0}, options)
            set_properties(request.pushed_model, {"pushed": 0})
        return PushResult(
            pushed=False,
            reason=decision.reason,
            model=_model_description(request, inputs),
            digest=None,
            blessings=blessings,
            warnings=warnings,
            pushed_model=pushed_model,
            any_model=request.any_model,
        )

    # of a TFX Model artifact, only the folder the push takes (not the TFMA evaluation copy)
    model_path = inputs.local(request.model, "--model", prefer=(FORMAT_SERVING, SERVING_MODEL_DIR))
    infra_path = None
    if request.infra_blessing is not None:
        # the stamped model is needed when no --model is given; otherwise only its presence
        infra_path = inputs.local(
            request.infra_blessing,
            "--infra-blessing",
            None if model_path is None else (*BlessingKind.INFRA.markers, PROPS),
        )
    source, source_warnings = inputs.translated(
        lambda: resolve_model(model_path, infra_path, any_model=request.any_model)
    )
    warnings += [inputs.translated_text(w) for w in source_warnings]
    tree = inputs.translated(lambda: list_tree(source.path))
    inputs.stack.callback(tree.files.close)
    _check_readable(tree.files, inputs.show)
    plan = _Plan(request, source, tree.files, tree.dirs, decision, blessings, progress, inputs.show)
    results = [plan.push_to(url) for url in request.destinations]
    warnings += [w for r in results for w in r.warnings]
    warnings += [
        f"--on-publish hook failed at {r.url}: {r.hook['error']}"
        for r in results
        if r.hook and not r.hook["ok"]
    ]
    files = plan.files
    digest = next((r.digest for r in results if r.digest), None)
    pushed = any(r.pushed for r in results)
    first = next((r for r in results if r.pushed), None)
    if pushed_model is not None:
        props: dict[str, Any] = {"pushed": 1 if pushed else 0}
        if first is not None:
            props.update(
                pushed_destination=first.destination,
                pushed_version=first.version,
                pushed_digest=digest,
                pushed_destinations=[r.destination for r in results if r.pushed],
            )
        pushed_model = write_pushed_model(
            pushed_model, list(files) if pushed else None, props, options, dirs=tree.dirs
        )
        set_properties(request.pushed_model, props)
    reason = decision.reason
    if results and all(r.already_present for r in results):
        reason += f"; identical to version {results[0].version}, already published (nothing copied)"
    failed = [r for r in results if r.error]
    if failed:
        reason += "; failed at " + ", ".join(r.url for r in failed)
    return PushResult(
        pushed=pushed,
        reason=reason,
        model=inputs.show(source.path),
        digest=digest,
        blessings=blessings,
        forced=decision.forced,
        force_reason=request.force_reason if decision.forced else None,
        warnings=warnings,
        destinations=results,
        pushed_model=pushed_model,
        model_layout=source.layout,
        model_kind=source.kind,
        any_model=source.any_model,
    )
