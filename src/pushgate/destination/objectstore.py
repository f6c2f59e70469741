"""Object-store destinations (``s3://``, ``gs://``, ``az://``, ``abfs://``, ``memory://``).

Buckets have no directory and no rename, so the crash-safe order is built from the writes a bucket
does have (keys relative to BASE):

1. claim ``.pushgate/claims/<v>.json`` with a create-only put (S3 ``If-None-Match: *``, GCS
   ``ifGenerationMatch=0``, Azure ``If-None-Match: *``): two pushers never own one number;
2. write the lease ``.pushgate/staging/<token>.lease`` (host, pid, expiry), renewed by a
   heartbeat thread for as long as the push runs;
3. upload every file to ``.pushgate/staging/<token>/<path>`` (never served: not numeric),
   streaming, hashing on the way, several files and multipart parts at once;
4. copy server-side into ``<v>/<path>``: Triton's model file (``model.py``, ``model.onnx``, ...,
   see :mod:`pushgate.layout`) first, then every other file, then TF Serving's
   ``saved_model.pb``/``saved_model.pbtxt`` last;
5. write the record ``.pushgate/records/<v>.json`` LAST: a version without a record is unfinished;
6. delete the staging prefix, then the lease.

A pusher killed anywhere leaves its lease behind. ``recover`` treats a lease as stale when it
expired, or when it names this host and a pid that is gone; for a stale lease it deletes the
unrecorded ``<v>/`` objects of its version (the number stays burned by its claim), the staging
prefix, and the lease, in that order, so a recover that is itself killed is finished by the next.

The window in which a watching model server can see a version appear is the length of step 4
(server-side copies only; the entry files land last). ``remove_version`` deletes the entry files
first, so a loader no longer starts on the version, then the rest, Triton's model file last:
there is no atomic removal. Triton may see a version with its model file and only part of the
rest for the copy's length: it then fails to load it (the old version keeps serving) and loads it
again at its next poll, once the rest has landed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import os
import queue
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import PurePosixPath
from typing import Any, BinaryIO, Protocol, cast

import obstore
from obstore.exceptions import (
    AlreadyExistsError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
)
from obstore.store import MemoryStore, from_url

from pushgate.destination.base import (
    META,
    Destination,
    ProgressFn,
    Staged,
    is_numeric_name,
    is_version_name,
    token_version,
)
from pushgate.destination.gcs import (
    GcsAccessDenied,
    GcsJsonStore,
    GcsPreconditionFailed,
    emulator_base_url,
)
from pushgate.errors import (
    DestinationError,
    DestinationInputError,
    MissingDependencyError,
    PushgateError,
)
from pushgate.layout import is_server_written, is_triton_entry
from pushgate.manifest import FileEntry, Manifest, checked_rel, hash_stream, workers
from pushgate.secrets import clean_url, remember_options, scrub
from pushgate.source import SourceFile

#: files a model server needs to start loading a version; copied last, deleted first
ENTRY_FILES = ("saved_model.pb", "saved_model.pbtxt")
#: files up to this size are read whole and sent in one PUT; bigger ones stream as multipart
SMALL = 8 * 1024 * 1024
#: multipart part size and read size for big files
PART = 8 * 1024 * 1024
#: multipart parts in flight per big file; with ``_BIG_FILES`` files at once this bounds memory
PART_CONCURRENCY = 4
_BIG_FILES = 2
LEASE_TTL = float(os.environ.get("PUSHGATE_LEASE_TTL", "120"))
#: the largest object S3's CopyObject copies; bigger files are uploaded straight into ``<v>/``
S3_COPY_LIMIT = 5 * 1024**3
#: default retries of a failed request, and the time after which none is tried again
MAX_RETRIES = 10
RETRY_TIMEOUT = 180.0

SCHEMES = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gs",
    "az": "az",
    "abfs": "abfs",
    "abfss": "abfs",
    "memory": "memory",
}
_CLIENT_KEYS = {
    "allow_http",
    "allow_invalid_certificates",
    "connect_timeout",
    "default_content_type",
    "http1_only",
    "http2_keep_alive_interval",
    "http2_keep_alive_timeout",
    "http2_keep_alive_while_idle",
    "http2_only",
    "pool_idle_timeout",
    "pool_max_idle_per_host",
    "proxy_url",
    "proxy_ca_certificate",
    "proxy_excludes",
    "randomize_addresses",
    "read_timeout",
    "timeout",
    "user_agent",
}
_BOOL_KEYS = {
    "allow_http",
    "allow_invalid_certificates",
    "http1_only",
    "http2_only",
    "randomize_addresses",
    "skip_signature",
    "use_emulator",
    "virtual_hosted_style_request",
    "unsigned_payload",
    "disable_tagging",
    "use_fabric_endpoint",
    "use_azure_cli",
}
_RETRY_KEYS = ("max_retries", "retry_timeout")
_GCS_OWN_KEYS = {"base_url", "service_account_key", "service_account_path", "token"}
# obstore (and the GCS store) raise the builtin FileNotFoundError for a missing object
_NOT_FOUND = (NotFoundError, FileNotFoundError)
_EXISTS = (AlreadyExistsError, PreconditionError, GcsPreconditionFailed)
_DENIED = (PermissionDeniedError, UnauthenticatedError, GcsAccessDenied)
_MEMORY: dict[str, MemoryStore] = {}
_MEMORY_LOCK = threading.Lock()


def _retry_config(max_retries: int, retry_timeout: float) -> dict[str, Any]:
    # Throttling (429/503), other 5xx, timeouts and dropped connections are retried by obstore
    # with exponential backoff and jitter.
    return {
        "max_retries": max_retries,
        "retry_timeout": timedelta(seconds=retry_timeout),
        "backoff": {
            "init_backoff": timedelta(milliseconds=100),
            "max_backoff": timedelta(seconds=15),
            "base": 2,
        },
    }


def _retry_options(options: dict[str, Any]) -> tuple[int, float]:
    """``max_retries`` and ``retry_timeout`` (seconds) taken out of the storage options."""
    try:
        tries = int(options.pop("max_retries", MAX_RETRIES))
        timeout = float(str(options.pop("retry_timeout", RETRY_TIMEOUT)).rstrip("s"))
    except ValueError as e:
        raise DestinationInputError(
            f"bad retry option: {e}; max_retries is a count, retry_timeout seconds"
        ) from e
    return max(0, tries), max(0.0, timeout)


def _aws_profile_provider(config: dict[str, Any]) -> Any:
    """boto3's credential chain, for what obstore's own chain lacks: named profiles
    (``AWS_PROFILE`` or the ``profile`` option) and the shared ``~/.aws`` files (SSO, assume-role,
    credential_process ...). None when keys are given or no profile is in play."""
    profile = config.pop("profile", None) or os.environ.get("AWS_PROFILE")
    if config.get("access_key_id") or config.get("aws_access_key_id"):
        return None
    if not profile:
        if os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_WEB_IDENTITY_TOKEN_FILE"):
            return None
        shared = [
            os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
            os.environ.get("AWS_CONFIG_FILE", "~/.aws/config"),
        ]
        if not any(os.path.exists(os.path.expanduser(f)) for f in shared):
            return None
    try:
        import boto3
        from obstore.auth.boto3 import Boto3CredentialProvider
    except ImportError as e:
        raise MissingDependencyError("AWS profiles (~/.aws, AWS_PROFILE)", "s3") from e
    try:
        session = boto3.Session(profile_name=profile)
    except Exception as e:
        raise DestinationInputError(f"AWS profile {profile!r}: {_first_line(e)}") from e
    if session.get_credentials() is None:
        return None
    if session.region_name and "region" not in config and "aws_region" not in config:
        config["region"] = session.region_name
    return Boto3CredentialProvider(session)


def _boolish(key: str, value: Any) -> Any:
    if key in _BOOL_KEYS and isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return value


def parse_azure_connection_string(text: str) -> dict[str, Any]:
    """``AZURE_STORAGE_CONNECTION_STRING`` as obstore Azure config (it does not read one)."""
    parts = dict(p.split("=", 1) for p in text.strip().strip(";").split(";") if "=" in p)
    cfg: dict[str, Any] = {}
    if parts.get("UseDevelopmentStorage", "").lower() == "true":
        cfg["use_emulator"] = True
        return cfg
    if "AccountName" in parts:
        cfg["account_name"] = parts["AccountName"]
    if "AccountKey" in parts:
        cfg["account_key"] = parts["AccountKey"]
    if "SharedAccessSignature" in parts:
        cfg["sas_key"] = parts["SharedAccessSignature"]
    if "BlobEndpoint" in parts:
        cfg["endpoint"] = parts["BlobEndpoint"].rstrip("/")
    elif "AccountName" in parts and "EndpointSuffix" in parts:
        proto = parts.get("DefaultEndpointsProtocol", "https")
        cfg["endpoint"] = f"{proto}://{parts['AccountName']}.blob.{parts['EndpointSuffix']}"
    return cfg


def split_url(url: str) -> tuple[str, str, str]:
    """``(scheme, bucket, prefix)`` of an object-store URL; raises DestinationInputError."""
    head, sep, rest = url.partition("://")
    scheme = SCHEMES.get(head.lower()) if sep else None
    if scheme is None:
        raise DestinationInputError(
            f"not an object-store URL: {url}; use s3://, gs://, az://, abfs:// or memory://"
        )
    rest = rest.split("?", 1)[0]
    bucket, _, prefix = rest.partition("/")
    if "@" in bucket:  # abfss://container@account.dfs.core.windows.net/path
        bucket = bucket.split("@", 1)[0]
    if not bucket:
        raise DestinationInputError(f"no bucket or container in {url}: use {head}://BUCKET/path")
    return scheme, bucket, prefix.strip("/")


def open_store(
    url: str, storage_options: Mapping[str, Any] | None = None
) -> tuple[Store, str, Callable[[str], str]]:
    """The store for the bucket of ``url``, the key prefix under it, and a scrubber.

    Credentials and endpoints come from each cloud's standard chain as obstore reads it
    (``AWS_*``, ``GOOGLE_*``, ``AZURE_*``, profiles, instance identity), plus two the chain misses:
    ``STORAGE_EMULATOR_HOST`` (GCS emulators) and ``AZURE_STORAGE_CONNECTION_STRING``.
    ``storage_options`` override both; client keys (``allow_http``, ``timeout`` ...) go to the
    HTTP client. ``allow_http`` is implied by an ``http://`` endpoint.
    """
    scheme, bucket, prefix = split_url(url)
    options = dict(storage_options or {})
    remember_options(options)
    if scheme == "memory":
        with _MEMORY_LOCK:
            memory = _MEMORY.setdefault(bucket, MemoryStore())
        return Obstore(memory), prefix, scrub
    client: dict[str, Any] = {}
    config: dict[str, Any] = {}
    provider: Any = None
    retries = _retry_options({k.lower(): v for k, v in options.items()})
    options = {k: v for k, v in options.items() if k.lower() not in _RETRY_KEYS}
    for k, v in options.items():
        key = k.lower()
        (client if key in _CLIENT_KEYS else config)[key] = _boolish(key, v)
    if scheme == "gs":
        emulator = emulator_base_url()
        if emulator and not (_GCS_OWN_KEYS & set(config)):
            config["base_url"] = emulator
            config.setdefault("skip_signature", True)
        endpoint = str(config.get("base_url", ""))
    elif scheme in ("az", "abfs"):
        conn = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
        if conn and "account_name" not in config and not config.get("use_emulator"):
            parsed = parse_azure_connection_string(conn)
            config = {**parsed, **config}
        endpoint = str(config.get("endpoint", ""))
    else:
        endpoint = str(
            config.get("endpoint")
            or os.environ.get("AWS_ENDPOINT_URL")
            or os.environ.get("AWS_ENDPOINT")
            or ""
        )
        provider = _aws_profile_provider(config) if scheme == "s3" else None
    if endpoint.startswith("http://") and "allow_http" not in client:
        client["allow_http"] = True
    client.setdefault("connect_timeout", "10s")
    client.setdefault("timeout", "120s")
    store: Store
    try:
        if scheme == "gs":
            store = GcsJsonStore(bucket, config, client, *retries)
        else:
            make: Any = from_url  # its overloads are per scheme; ours is chosen at run time
            extra = {"credential_provider": provider} if provider is not None else {}
            store = Obstore(
                make(
                    f"{scheme}://{bucket}",
                    config=config or None,
                    client_options=client,
                    retry_config=_retry_config(*retries),
                    **extra,
                )
            )
    except Exception as e:
        raise DestinationInputError(
            f"cannot open {clean_url(url)}: {scrub(_first_line(e))}; check --storage-option keys "
            "and the environment"
        ) from e
    return store, prefix, scrub


class Store(Protocol):
    """The few bucket operations a destination needs; keys are full object keys."""

    def list_prefix(self, prefix: str | None) -> Iterator[list[dict[str, Any]]]: ...
    def list_with_delimiter(self, prefix: str | None) -> dict[str, Any]: ...
    def get_bytes(self, key: str) -> bytes: ...
    def get_stream(self, key: str, chunk: int) -> Iterator[Any]: ...
    def put(self, key: str, data: bytes, *, create_only: bool = False) -> None: ...

    #: the block size to stream in
    part_size: int

    def put_stream(
        self, key: str, chunks: Callable[[], Iterator[bytes]], size: int | None = None
    ) -> None:
        """Upload the stream ``chunks()`` gives (``size`` bytes, if known), calling it again to
        start over if needed."""

    def copy(self, src: str, dst: str) -> None: ...
    def delete(self, keys: str | list[str]) -> None: ...
    def get_tagged(self, key: str) -> tuple[bytes, str]:
        """The object's bytes and the tag :meth:`put_if` compares (ETag, generation)."""
        ...

    def put_if(self, key: str, data: bytes, tag: str | None) -> None:
        """Write only if the object still has ``tag`` (``None``: does not exist); a
        precondition error otherwise."""
        ...


class Obstore:
    """:class:`Store` over an obstore store (S3, Azure, memory): blocking calls, so they can
    run in thread pools (obstore's async API aborted Python at exit in about a quarter of runs).
    """

    part_size = PART

    def __init__(self, store: Any) -> None:
        self.store = store

    def list_prefix(self, prefix: str | None) -> Iterator[list[dict[str, Any]]]:
        return obstore.list(self.store, prefix or None, chunk_size=1000)  # type: ignore[return-value]

    def list_with_delimiter(self, prefix: str | None) -> dict[str, Any]:
        return dict(obstore.list_with_delimiter(self.store, prefix or None))

    def get_bytes(self, key: str) -> bytes:
        return bytes(obstore.get(self.store, key).bytes())

    def get_stream(self, key: str, chunk: int) -> Iterator[Any]:
        return iter(obstore.get(self.store, key).stream(min_chunk_size=chunk))

    def put(self, key: str, data: bytes, *, create_only: bool = False) -> None:
        if create_only:
            obstore.put(self.store, key, data, mode="create", use_multipart=False)
        else:
            obstore.put(self.store, key, data, use_multipart=False)

    def put_stream(
        self, key: str, chunks: Callable[[], Iterator[bytes]], size: int | None = None
    ) -> None:
        obstore.put(
            self.store,
            key,
            chunks(),
            use_multipart=True,
            chunk_size=PART,
            max_concurrency=PART_CONCURRENCY,
        )

    def copy(self, src: str, dst: str) -> None:
        obstore.copy(self.store, src, dst, overwrite=True)

    def delete(self, keys: str | list[str]) -> None:
        obstore.delete(self.store, keys)

    def get_tagged(self, key: str) -> tuple[bytes, str]:
        got = obstore.get(self.store, key)
        return bytes(got.bytes()), str(got.meta["e_tag"])

    def put_if(self, key: str, data: bytes, tag: str | None) -> None:
        if tag is None:
            obstore.put(self.store, key, data, mode="create", use_multipart=False)
        else:
            obstore.put(self.store, key, data, mode={"e_tag": tag}, use_multipart=False)


_XML_FIELD = re.compile(r"<(Code|Message)>([^<]*)</\1>")
_HTTP_STATUS = re.compile(r"status code: (\d{3}[^:]*)")
#: in obstore's error when the AWS chain fell through to instance metadata (ECS, EC2)
_NO_CREDENTIALS = ("169.254.169.254", "169.254.170.2", "/latest/api/token")
_DENIED_CODES = (
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "ExpiredToken",
    "InvalidToken",
    "AuthenticationFailed",
    "AuthorizationFailure",
    "AuthorizationPermissionMismatch",
    "InvalidClientTokenId",
)


def _first_line(e: BaseException) -> str:
    """A store error as one line: an S3/Azure XML error body becomes ``<status> <Code>:
    <Message>`` (its request ids and the raw XML dropped)."""
    text = str(e).split("\n\nDebug source", 1)[0].strip()
    fields = dict(_XML_FIELD.findall(text))
    if fields:
        status = _HTTP_STATUS.search(text)
        head = f"HTTP {status.group(1).strip()}: " if status else ""
        text = head + ": ".join(fields[k] for k in ("Code", "Message") if fields.get(k))
    text = re.sub(r"\s+", " ", text)
    return text if len(text) <= 500 else text[:500] + "…"


def store_error(
    e: BaseException, what: str, where: str, scrub: Callable[[str], str] = scrub
) -> PushgateError:
    """The pushgate error for a store's failure to do ``what`` at ``where``: one line, scrubbed,
    saying what to do when it is the bucket, the credentials or the permissions."""
    raw = str(e)
    cause = scrub(_first_line(e))
    if _missing_bucket(e):
        return DestinationInputError(
            f"{what} {where} failed: the bucket or container does not exist ({cause}); "
            "create it first or fix the URL"
        )
    if where.startswith("s3://") and any(s in raw for s in _NO_CREDENTIALS):
        return DestinationInputError(
            f"{what} {where} failed: no AWS credentials were found. pushgate looks for them in "
            "--storage-option access_key_id=.../secret_access_key=..., the environment "
            "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, "
            "AWS_WEB_IDENTITY_TOKEN_FILE), the profile files (AWS_PROFILE, ~/.aws/credentials, "
            "~/.aws/config) and last the instance metadata service at 169.254.169.254, which "
            f"gave none ({cause})"
        )
    if (
        isinstance(e, _DENIED)
        or " 401 " in raw
        or " 403 " in raw
        or any(c in raw for c in _DENIED_CODES)
    ):
        return DestinationInputError(
            f"{what} {where} failed: access denied ({cause}); check the credentials in the "
            "environment (AWS_*, GOOGLE_*, AZURE_*) or --storage-option"
        )
    return DestinationError(f"{what} {where} failed: {cause}")


def _missing_bucket(e: BaseException) -> bool:
    text = str(e)
    return any(
        s in text
        for s in (
            "NoSuchBucket",
            "ContainerNotFound",
            "bucket does not exist",
            "The specified container does not exist",
        )
    )


class _StreamReader(io.RawIOBase):
    """A file object over obstore's streamed GET (bounded memory)."""

    def __init__(self, chunks: Iterator[Any]) -> None:
        self._chunks = chunks
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            try:
                self._buf = memoryview(bytes(next(self._chunks)))
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def _is_entry(path: str) -> bool:
    return PurePosixPath(path).name in ENTRY_FILES


def _entry_last(paths: Iterable[str]) -> tuple[list[str], list[str]]:
    """``(others, entries)``; entries sorted deepest first so the top-level one lands last.
    Triton's model files (``model.savedmodel/saved_model.pb`` too) are among the others: see
    :func:`_triton_first`."""
    others: list[str] = []
    entries: list[str] = []
    for p in paths:
        tf_entry = PurePosixPath(p).name in ENTRY_FILES and not is_triton_entry(p)
        (entries if tf_entry else others).append(p)
    entries.sort(key=lambda p: (-p.count("/"), p))
    return others, entries


def _triton_first(paths: list[str]) -> tuple[list[str], list[str]]:
    """``(Triton model files, the rest)``. A Triton version prefix without its model file hangs
    Triton for good (LOADING for ever, poll loop stopped); one with its model file but not yet
    its other files only fails to load, and Triton loads it again when its next poll sees the
    rest land (measured with tritonserver 2.51 on S3). So model files are copied first and
    deleted last: the opposite of TF Serving's ``saved_model.pb``."""
    first = [p for p in paths if is_triton_entry(p)]
    return first, [p for p in paths if not is_triton_entry(p)]


class ObjectStoreDestination(Destination):
    """A BASE prefix in a bucket (S3, GCS, Azure Blob) or in process memory."""

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.url = clean_url(url)
        self.store, prefix, self.scrub = open_store(url, storage_options)
        self.prefix = f"{prefix}/" if prefix else ""
        #: files above this size skip staging (the store cannot copy them server-side)
        self.copy_limit: int | None = None
        if split_url(url)[0] == "s3":
            self.copy_limit = int(os.environ.get("PUSHGATE_S3_COPY_LIMIT", S3_COPY_LIMIT))

    def _direct(self, size: int) -> bool:
        """True for a file uploaded straight into ``<v>/``, since it is too big to copy."""
        return self.copy_limit is not None and size > self.copy_limit

    # -- keys and errors ----------------------------------------------------------------------
    def _key(self, rel: str) -> str:
        return f"{self.prefix}{rel}"

    def _meta(self, key: str) -> str:
        return self._key(f"{META}/{key}")

    def _where(self, key: str) -> str:
        return f"{self.url}/{key[len(self.prefix) :]}" if key.startswith(self.prefix) else key

    def _error(self, e: BaseException, what: str, key: str) -> PushgateError:
        return store_error(e, what, self._where(key), self.scrub)

    def _list(self, rel_prefix: str) -> list[dict[str, Any]]:
        key = self._key(rel_prefix)
        try:
            out: list[dict[str, Any]] = []
            for batch in self.store.list_prefix(key):
                out.extend(batch)
            return out
        except _NOT_FOUND:
            return []
        except Exception as e:
            raise self._error(e, "listing", key) from e

    def _list_dir(self, rel_prefix: str) -> tuple[list[str], list[dict[str, Any]]]:
        """Direct children of a prefix: ``(sub-prefix names, objects)``."""
        key = self._key(rel_prefix)
        try:
            res = self.store.list_with_delimiter(key or None)
        except _NOT_FOUND:
            return [], []
        except Exception as e:
            raise self._error(e, "listing", key) from e
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in res["common_prefixes"]]
        return names, list(res["objects"])

    def _delete(self, keys: list[str]) -> None:
        for i in range(0, len(keys), 1000):
            batch = keys[i : i + 1000]
            try:
                self.store.delete(batch)
            except _NOT_FOUND:
                pass
            except Exception as e:
                raise self._error(e, "deleting", batch[0]) from e

    def _copy(self, src: str, dst: str) -> None:
        try:
            self.store.copy(src, dst)
        except Exception as e:
            raise self._error(e, "copying to", dst) from e

    @staticmethod
    def _pool(n: int) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=max(1, min(2 * workers(), n)))

    # -- versions -----------------------------------------------------------------------------
    def exists(self) -> bool:
        key = self._key("")
        try:
            return any(batch for batch in itertools.islice(self.store.list_prefix(key), 1))
        except _NOT_FOUND as e:
            if _missing_bucket(e):
                raise self._error(e, "listing", key or self.url) from e
            return False
        except Exception as e:
            raise self._error(e, "listing", key or self.url) from e

    def numeric_children(self) -> list[str]:
        names, _ = self._list_dir("")
        return [n for n in names if is_version_name(n)]

    def oversized_children(self) -> list[str]:
        names, _ = self._list_dir("")
        return [n for n in names if is_numeric_name(n) and not is_version_name(n)]

    def version_url(self, version: str) -> str:
        return f"{self.url}/{version}"

    def list_version_files(self, version: str) -> dict[str, int]:
        root = self._key(f"{version}/")
        found = {m["path"][len(root) :]: int(m["size"]) for m in self._list(f"{version}/")}
        return {rel: n for rel, n in found.items() if not is_server_written(rel)}

    def open_version_file(self, version: str, rel: str) -> BinaryIO:
        rel = checked_rel(rel)
        return self._open(self._key(f"{version}/{rel}"))

    def _open(self, key: str) -> BinaryIO:
        try:
            chunks = self.store.get_stream(key, PART)
        except Exception as e:
            raise self._error(e, "reading", key) from e
        raw = _StreamReader(chunks)
        return io.BufferedReader(raw, PART)

    # -- meta ---------------------------------------------------------------------------------
    def read_meta(self, key: str) -> bytes | None:
        k = self._meta(key)
        try:
            return self.store.get_bytes(k)
        except _NOT_FOUND as e:
            if _missing_bucket(e):
                raise self._error(e, "reading", k) from e
            return None
        except Exception as e:
            raise self._error(e, "reading", k) from e

    def write_meta(
        self, key: str, data: bytes, *, create_only: bool = False, durable: bool = True
    ) -> bool:
        # a completed PUT is durable in every object store: ``durable`` changes nothing here
        k = self._meta(key)
        try:
            self.store.put(k, data, create_only=create_only)
            return True
        except _EXISTS:
            if create_only:
                return False
            raise
        except Exception as e:
            raise self._error(e, "writing", k) from e

    def list_meta(self, prefix: str) -> list[str]:
        base = self._meta("")
        _, objects = self._list_dir(f"{META}/{prefix.rstrip('/')}/")
        return sorted(
            m["path"][len(base) :]
            for m in objects
            if not m["path"].rsplit("/", 1)[-1].startswith(".tmp-")
        )

    def iter_meta(self, prefix: str) -> Iterator[str]:
        base = self._meta("")
        key = self._meta(prefix)
        try:
            for batch in self.store.list_prefix(key):
                names = sorted(m["path"][len(base) :] for m in batch)
                yield from (n for n in names if not n.rsplit("/", 1)[-1].startswith(".tmp-"))
        except _NOT_FOUND:
            return
        except Exception as e:
            raise self._error(e, "listing", key) from e

    def delete_meta(self, key: str) -> None:
        self._delete([self._meta(key)])

    # -- push protocol ------------------------------------------------------------------------
    def check_writable(self) -> None:
        probe = self._meta(f".tmp-probe-{uuid.uuid4().hex}")
        try:
            self.store.put(probe, b"")
            self.store.delete(probe)
        except Exception as e:
            err = self._error(e, "writing", probe)
            if isinstance(err, DestinationInputError):
                raise err from e
            raise DestinationInputError(f"cannot use destination {self.url}: {err}") from e

    @contextlib.contextmanager
    def lease(self, token: str) -> Iterator[None]:
        key = self._meta(f"staging/{token}.lease")
        stop = threading.Event()

        def write() -> None:
            doc = {
                "schema": "pushgate.lease/v1",
                "token": token,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "expires": time.time() + LEASE_TTL,
                "ttl": LEASE_TTL,
            }
            self.store.put(key, json.dumps(doc).encode())

        try:
            write()
        except Exception as e:
            raise self._error(e, "writing the lease", key) from e

        def beat() -> None:
            while not stop.wait(LEASE_TTL / 4):
                with contextlib.suppress(Exception):  # retried at the next beat
                    write()

        heart = threading.Thread(target=beat, name=f"pushgate-lease-{token}", daemon=True)
        heart.start()
        try:
            yield
        finally:
            stop.set()
            heart.join()
            with contextlib.suppress(Exception):
                self.store.delete(key)

    def _upload_one(self, src: SourceFile, key: str, progress: ProgressFn | None) -> FileEntry:
        h = hashlib.sha256()
        size = sent = 0
        with open(src.abspath, "rb", buffering=0) as f:
            if src.size <= SMALL:
                data = f.read(SMALL + 1)
                h.update(data)
                size = len(data)
                self.store.put(key, data)
                if progress:
                    progress(size)
            else:

                def chunks() -> Iterator[bytes]:
                    """The file from its start, hashed on the way (again, if started over)."""
                    nonlocal h, size, sent
                    f.seek(0)
                    h, size = hashlib.sha256(), 0
                    while True:
                        block = f.read(self.store.part_size)
                        if not block:
                            return
                        h.update(block)
                        size += len(block)
                        if progress and size > sent:  # bytes sent before a restart count once
                            progress(size - sent)
                            sent = size
                        yield block

                self.store.put_stream(key, chunks, src.size)
        return src.entry(size, h.hexdigest())

    def _upload(
        self, files: list[SourceFile], root: str, progress: ProgressFn | None
    ) -> list[FileEntry]:
        """Upload files under the key prefix ``root``: big files streamed a few at a time
        (multipart, bounded memory), small ones many at a time."""
        big = sorted((f for f in files if f.size > SMALL), key=lambda f: -f.size)
        small = [f for f in files if f.size <= SMALL]

        def task(f: SourceFile) -> FileEntry:
            key = f"{root}{f.rel}"
            try:
                return self._upload_one(f, key, progress)
            except DestinationError:
                raise
            except OSError as e:
                if "Object at location" in str(e) or _missing_bucket(e):
                    raise self._error(e, "uploading", key) from e
                raise DestinationError(f"reading {f.abspath} failed: {e.strerror or e}") from e
            except Exception as e:
                raise self._error(e, "uploading", key) from e

        entries: list[FileEntry] = []
        with ThreadPoolExecutor(max_workers=_BIG_FILES) as big_pool, self._pool(len(small)) as pool:
            big_futs = [big_pool.submit(task, f) for f in big]
            small_futs = [pool.submit(task, f) for f in small]
            for fut in big_futs + small_futs:
                entries.append(fut.result())
        return entries

    def stage(
        self,
        files: list[SourceFile],
        token: str,
        progress: ProgressFn | None,
        dirs: Sequence[str] = (),
    ) -> Staged:
        # A bucket has no empty directories: ``dirs`` are recorded in the manifest, not written
        # (no marker objects; TF Serving and Triton do not need them).
        # Files too big for a server-side copy (S3: over 5 GiB) go straight to <v>/: the version
        # is visible for their upload instead of their copy, still without its entry files,
        # and unrecorded until the record lands, so recovery removes it after a crash.
        version = token_version(token)
        direct = [f for f in files if self._direct(f.size) and not _is_entry(f.rel)]
        staged = [f for f in files if f not in direct]
        try:
            entries = self._upload(staged, self._meta(f"staging/{token}/"), progress)
            entries += self._upload(direct, self._key(f"{version}/"), progress)
        except BaseException:
            self._clean_failed_stage(token, version)
            raise
        return Staged(token, Manifest.of(entries, dirs))

    def stage_from_version(
        self,
        version: str,
        token: str,
        progress: ProgressFn | None,
        dirs: Sequence[str] = (),
    ) -> Staged:
        files = self.list_version_files(version)
        if not files:
            raise DestinationError(f"version {self.version_url(version)} holds no files")
        root = self._meta(f"staging/{token}/")
        new_version = token_version(token)

        def task(rel: str) -> FileEntry:
            src = self._key(f"{version}/{rel}")
            if self._direct(files[rel]) and not _is_entry(rel):
                # too big to copy server-side: streamed through, hashed on the way (as stage())
                dst = self._key(f"{new_version}/{rel}")
                hashers: list[Any] = []

                def chunks() -> Iterator[bytes]:  # from the start, with a fresh hash, each time
                    hashers.append(hashlib.sha256())
                    return self._read_ahead(src, hashers[-1])

                try:
                    self.store.put_stream(dst, chunks, files[rel])
                except PushgateError:
                    raise
                except Exception as e:
                    raise self._error(e, "copying to", dst) from e
                digest = hashers[-1].hexdigest()
            else:
                try:
                    self.store.copy(src, f"{root}{rel}")
                except _NOT_FOUND as e:
                    if _missing_bucket(e):
                        raise self._error(e, "copying", src) from e
                    raise DestinationError(
                        f"{self._where(src)} (of version {version}) disappeared while it was "
                        "being copied: the version was removed (by a prune?) or damaged; "
                        "nothing was published"
                    ) from e
                except Exception as e:
                    raise self._error(e, "copying to", f"{root}{rel}") from e
                # hash the staged copy itself (never trust the record): a damaged target must
                # be caught by the caller's digest check, not republished as intact
                with self._open(f"{root}{rel}") as f:
                    digest = hash_stream(cast(Any, f), size=files[rel])
            entry = FileEntry(rel, files[rel], digest)
            if progress:
                progress(files[rel])
            return entry

        try:
            with self._pool(len(files)) as pool:
                entries = list(pool.map(task, sorted(files)))
        except BaseException:
            self._clean_failed_stage(token, new_version)
            raise
        return Staged(token, Manifest.of(entries, dirs))

    def _clean_failed_stage(self, token: str, version: str) -> None:
        """Best effort after a failed stage: the staging prefix, then whatever went straight
        into ``<version>/`` (each on its own: one failing must not skip the other; recover()
        finishes what is left)."""
        with contextlib.suppress(Exception):
            self.discard(token)
        with contextlib.suppress(Exception):
            self._remove_unrecorded(version)

    def _read_ahead(self, key: str, h: Any) -> Iterator[bytes]:
        """The object's blocks, hashed into ``h``, read by a helper thread: obstore may not
        read one object from inside the iterator it is uploading another from."""
        blocks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=2)
        stop = threading.Event()

        def offer(item: bytes | BaseException | None) -> bool:
            while not stop.is_set():  # the consumer may stop early: never block forever
                try:
                    blocks.put(item, timeout=0.2)
                    return True
                except queue.Full:
                    pass
            return False

        def produce() -> None:
            try:
                with self._open(key) as f:
                    for block in iter(lambda: f.read(self.store.part_size), b""):
                        if not offer(block):
                            return
                offer(None)
            except BaseException as e:
                offer(e)

        reader = threading.Thread(target=produce, name="pushgate-read-ahead", daemon=True)
        reader.start()
        try:
            while (item := blocks.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                h.update(item)
                yield item
        finally:
            stop.set()
            reader.join()

    def put_files(
        self, files: list[SourceFile], rel_prefix: str, progress: ProgressFn | None = None
    ) -> Manifest:
        """Upload local files under ``<BASE>/<rel_prefix>`` (plain copies, no protocol)."""
        return Manifest.of(self._upload(files, self._key(rel_prefix), progress))

    def put_bytes(self, rel: str, data: bytes) -> None:
        """Write one small object at ``<BASE>/<rel>`` (plain write, no protocol)."""
        key = self._key(rel)
        try:
            self.store.put(key, data)
        except Exception as e:
            raise self._error(e, "writing", key) from e

    def delete_files(self, rels: list[str]) -> None:
        """Delete ``<BASE>/<rel>`` for each listed path (artifact outputs, no protocol)."""
        self._delete([self._key(rel) for rel in rels])

    def publish(self, staged: Staged, version: str, record: bytes) -> None:
        root = self._meta(f"staging/{staged.token}/")
        others, entries = _entry_last(
            e.path for e in staged.manifest.files if not self._direct(e.size) or _is_entry(e.path)
        )
        firsts, others = _triton_first(others)
        try:
            for p in firsts:
                self._copy(f"{root}{p}", self._key(f"{version}/{p}"))
            with self._pool(len(others)) as pool:
                list(
                    pool.map(
                        lambda p: self._copy(f"{root}{p}", self._key(f"{version}/{p}")), others
                    )
                )
            for p in entries:
                self._copy(f"{root}{p}", self._key(f"{version}/{p}"))
            self.write_meta(f"records/{version}.json", record)
        except BaseException:
            # Leave nothing that looks like a version; recover() finishes this if we cannot.
            with contextlib.suppress(Exception):
                self._remove_unrecorded(version)
            raise
        with contextlib.suppress(Exception):
            self.discard(staged.token)

    def discard(self, token: str) -> None:
        keys = [m["path"] for m in self._list(f"{META}/staging/{token}/")]
        self._delete(keys)

    def _remove_unrecorded(self, version: str) -> bool:
        if self.read_meta(f"records/{version}.json") is not None:
            return False
        keys = [m["path"] for m in self._list(f"{version}/")]
        if not keys:
            return False
        others, entries = _entry_last(keys)
        lasts, others = _triton_first(others)
        self._delete(entries[::-1])
        self._delete(others)
        self._delete(lasts)
        return True

    def _lease_is_stale(self, raw: bytes | None) -> bool:
        if raw is None:
            return True
        try:
            doc = json.loads(raw)
            expires, host, pid = float(doc["expires"]), str(doc["host"]), int(doc["pid"])
        except (ValueError, KeyError, TypeError):
            return True
        if time.time() > expires:
            return True
        if host == socket.gethostname():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
        return False

    def recover(self) -> list[str]:
        prefixes, objects = self._list_dir(f"{META}/staging/")
        tokens = set(prefixes)
        tokens |= {
            m["path"].rsplit("/", 1)[-1][: -len(".lease")]
            for m in objects
            if m["path"].endswith(".lease")
        }
        done: list[str] = []
        for token in sorted(tokens):
            if not self._lease_is_stale(self.read_meta(f"staging/{token}.lease")):
                continue
            version = token_version(token)
            if is_version_name(version) and self._remove_unrecorded(version):
                done.append(
                    f"removed unfinished version {self.version_url(version)} "
                    "(no record; its number stays used)"
                )
            if token in prefixes:
                self.discard(token)
                done.append(f"removed staging debris {self.url}/{META}/staging/{token}/")
            self.delete_meta(f"staging/{token}.lease")
        return done

    def remove_version(self, version: str) -> bool:
        keys = [m["path"] for m in self._list(f"{version}/")]
        others, entries = _entry_last(keys)
        lasts, others = _triton_first(others)
        self._delete(entries[::-1])  # top-level saved_model.pb first: loaders stop starting on it
        self._delete(others)
        self._delete(lasts)  # Triton's model file last: never a version without it
        return bool(keys)

    # -- server configuration files -----------------------------------------------------------
    def read_file(self, rel: str) -> tuple[bytes | None, str | None]:
        key = self._key(rel)
        try:
            return self.store.get_tagged(key)
        except _NOT_FOUND as e:
            if _missing_bucket(e):
                raise self._error(e, "reading", key) from e
            return None, None
        except Exception as e:
            raise self._error(e, "reading", key) from e

    def write_file_conditional(self, rel: str, data: bytes, tag: str | None) -> bool:
        # one PUT replaces an object whole; If-Match (S3, Azure) or ifGenerationMatch (GCS)
        key = self._key(rel)
        try:
            self.store.put_if(key, data, tag)
            return True
        except _EXISTS:
            return False
        except _NOT_FOUND:  # deleted since it was read
            return False
        except Exception as e:
            raise self._error(e, "writing", key) from e
