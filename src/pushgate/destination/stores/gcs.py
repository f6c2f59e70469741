"""Google Cloud Storage through its JSON API (``gs://``).

obstore speaks GCS's XML API, which real GCS serves but which no GCS emulator here accepts for
writes (fake-gcs-server answers ``invalid uploadType`` to XML PUT, multipart and copy). The JSON
API is GCS's primary API (``gsutil``, ``gcloud storage`` and every Google client library use it)
and fake-gcs-server implements it, so pushgate speaks it for ``gs://`` and its tests exercise the
same requests real GCS gets:

===========================  =========================================================
operation                    request
===========================  =========================================================
create-only put (claims)     ``POST /upload/...?uploadType=multipart&ifGenerationMatch=0``
small file                   ``POST /upload/...?uploadType=multipart``
big file                     resumable session, 8 MiB chunks, resumed at the offset
                             the server persisted when a chunk fails
server-side copy             ``POST .../rewriteTo/...`` until ``done``
list                         ``GET /storage/v1/b/B/o?prefix=&delimiter=/`` (paged)
get                          ``GET /storage/v1/b/B/o/O?alt=media`` (streamed)
===========================  =========================================================

Credentials come from Google's standard chain (``google.auth.default()``: the
``GOOGLE_APPLICATION_CREDENTIALS`` key file, ``gcloud auth application-default login``, the
metadata server on GCE/GKE/Cloud Run) or from ``service_account_path`` / ``service_account_key`` /
``token`` storage options. ``STORAGE_EMULATOR_HOST`` (or ``base_url`` with ``skip_signature``)
talks to an emulator without credentials. Requests are retried with exponential backoff and
jitter on 408, 429, 5xx and dropped connections, like obstore's own retries.

The store presents the :class:`pushgate.destination.stores.base.Store` interface.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

from pushgate.errors import MissingDependencyError

DEFAULT_BASE_URL = "https://storage.googleapis.com"
#: resumable-upload chunk; GCS wants a multiple of 256 KiB
CHUNK = 16 * 1024 * 1024
SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}


class GcsError(Exception):
    """A GCS request failed; the message has the HTTP status and the server's reason."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class GcsPreconditionFailed(GcsError):
    """A create-only write found the object already there (HTTP 412)."""


class _SessionLost(Exception):
    """The server no longer knows a resumable-upload session: the upload starts over."""


#: how many times an upload starts over after its session is lost
_RESTARTS = 3


class GcsAccessDenied(GcsError):
    """HTTP 401 or 403: the credentials are missing, wrong or not allowed."""


def _reason(body: bytes) -> str:
    try:
        doc = json.loads(body)
        return str(doc["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return body[:200].decode("utf-8", "replace").strip() or "no reason given"


class GcsJsonStore:
    """One bucket, spoken to through the JSON API with urllib3 (thread-safe)."""

    #: the block size callers should stream in (one resumable-upload chunk, copied nowhere)
    part_size = CHUNK

    def __init__(
        self,
        bucket: str,
        config: dict[str, Any],
        client: dict[str, Any],
        max_retries: int = 10,
        retry_timeout: float = 180.0,
    ) -> None:
        try:
            import urllib3
        except ImportError as e:  # pragma: no cover - urllib3 ships with the gcs extra
            raise MissingDependencyError("gs:// destinations", "gcs") from e
        self._urllib3 = urllib3
        self.bucket = bucket
        self._tries = max_retries + 1
        self._retry_timeout = retry_timeout
        self.base_url = str(config.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        self._anonymous = bool(config.get("skip_signature"))
        self._config = config
        self._credentials: Any = None
        self._cred_lock = threading.Lock()
        self._http = urllib3.PoolManager(
            maxsize=64,
            block=False,
            retries=False,
            timeout=urllib3.Timeout(
                connect=_seconds(client.get("connect_timeout"), 10.0),
                read=_seconds(client.get("timeout"), 120.0),
            ),
            cert_reqs="CERT_NONE" if client.get("allow_invalid_certificates") else "CERT_REQUIRED",
        )
        self._b = f"{self.base_url}/storage/v1/b/{quote(bucket, safe='')}"
        self._up = f"{self.base_url}/upload/storage/v1/b/{quote(bucket, safe='')}"

    # -- credentials --------------------------------------------------------------------------
    def _auth_headers(self) -> dict[str, str]:
        if self._anonymous:
            return {}
        token = self._config.get("token")
        if token:
            return {"Authorization": f"Bearer {token}"}
        with self._cred_lock:
            if self._credentials is None:
                self._credentials = self._load_credentials()
            if not self._credentials.valid:
                from google.auth.transport.urllib3 import Request

                self._credentials.refresh(Request(self._http))
            headers: dict[str, str] = {}
            self._credentials.apply(headers)
            return headers

    def _load_credentials(self) -> Any:
        try:
            import google.auth
            from google.oauth2 import service_account
        except ImportError as e:
            raise MissingDependencyError("gs:// credentials", "gcs") from e
        key = self._config.get("service_account_key")
        path = self._config.get("service_account_path") or self._config.get("service_account")
        if key:
            return service_account.Credentials.from_service_account_info(
                json.loads(key), scopes=[SCOPE]
            )
        if path:
            return service_account.Credentials.from_service_account_file(path, scopes=[SCOPE])
        credentials, _ = google.auth.default(scopes=[SCOPE])
        return credentials

    # -- one request, retried -----------------------------------------------------------------
    def _request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        ok: tuple[int, ...] = (200,),
        missing: str = "bucket",
    ) -> Any:
        urllib3 = self._urllib3
        deadline = time.monotonic() + self._retry_timeout
        for attempt in range(self._tries):
            try:
                resp = self._http.request(
                    method,
                    url,
                    body=body,
                    headers={**self._auth_headers(), **(headers or {})},
                    preload_content=not stream,
                    redirect=False,
                )
            except urllib3.exceptions.HTTPError as e:
                if attempt + 1 < self._tries and time.monotonic() < deadline:
                    _backoff(attempt)
                    continue
                raise GcsError(f"{method} {url} failed: {e}") from e
            if resp.status in ok:
                return resp
            data = resp.read() if stream else resp.data
            resp.release_conn()
            if (
                resp.status in _RETRY_STATUS
                and attempt + 1 < self._tries
                and time.monotonic() < deadline
            ):
                _backoff(attempt)
                continue
            raise _status_error(method, url, resp.status, data, missing)
        raise AssertionError("unreachable")  # pragma: no cover

    def _obj(self, key: str) -> str:
        return f"{self._b}/o/{quote(key, safe='')}"

    # -- the store interface ------------------------------------------------------------------
    def list_prefix(self, prefix: str | None) -> Iterator[list[dict[str, Any]]]:
        for page in self._pages(prefix or "", delimiter=False):
            yield [_meta(item) for item in page.get("items", [])]

    def list_with_delimiter(self, prefix: str | None) -> dict[str, Any]:
        objects: list[dict[str, Any]] = []
        prefixes: list[str] = []
        for page in self._pages(prefix or "", delimiter=True):
            objects += [_meta(item) for item in page.get("items", [])]
            prefixes += page.get("prefixes", [])
        return {"common_prefixes": prefixes, "objects": objects}

    def _pages(self, prefix: str, *, delimiter: bool) -> Iterator[dict[str, Any]]:
        if prefix and delimiter and not prefix.endswith("/"):
            prefix += "/"
        token = ""
        while True:
            query = f"prefix={quote(prefix, safe='')}&maxResults=1000"
            if delimiter:
                query += "&delimiter=%2F"
            if token:
                query += f"&pageToken={quote(token, safe='')}"
            resp = self._request("GET", f"{self._b}/o?{query}")
            page = json.loads(resp.data)
            yield page
            token = page.get("nextPageToken") or ""
            if not token:
                return

    def get_bytes(self, key: str) -> bytes:
        return bytes(self._request("GET", f"{self._obj(key)}?alt=media", missing="object").data)

    def get_stream(self, key: str, chunk: int) -> Iterator[bytes]:
        resp = self._request("GET", f"{self._obj(key)}?alt=media", stream=True, missing="object")

        def chunks() -> Iterator[bytes]:
            try:
                yield from resp.stream(chunk)
            except self._urllib3.exceptions.HTTPError as e:
                raise GcsError(f"reading gs://{self.bucket}/{key} failed: {e}") from e
            finally:
                resp.release_conn()

        return chunks()

    def get_tagged(self, key: str) -> tuple[bytes, str]:
        resp = self._request("GET", f"{self._obj(key)}?alt=media", missing="object")
        return bytes(resp.data), str(resp.headers.get("x-goog-generation") or "")

    def put_if(self, key: str, data: bytes, tag: str | None) -> None:
        """:meth:`put` with ``ifGenerationMatch`` (0 when ``tag`` is None: create only)."""
        if tag is not None and not tag.isdigit():
            raise GcsPreconditionFailed(f"no generation for gs://{self.bucket}/{key}", 412)
        self.put(key, data, generation="0" if tag is None else tag)

    def put(
        self, key: str, data: bytes, *, create_only: bool = False, generation: str | None = None
    ) -> None:
        """One multipart upload (metadata and bytes in one request), as Google's clients send
        small objects; ``create_only`` adds ``ifGenerationMatch=0``, ``generation`` that one."""
        boundary = f"pushgate-{uuid.uuid4().hex}"
        body = b"".join(
            (
                f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
                json.dumps({"name": key}).encode(),
                f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n".encode(),
                bytes(data),
                f"\r\n--{boundary}--\r\n".encode(),
            )
        )
        if create_only:
            generation = "0"
        query = "uploadType=multipart" + (
            f"&ifGenerationMatch={generation}" if generation is not None else ""
        )
        self._request(
            "POST",
            f"{self._up}/o?{query}",
            body=body,
            headers={"Content-Type": f"multipart/related; boundary={boundary}"},
        )

    def put_stream(
        self, key: str, chunks: Callable[[], Iterator[bytes]], size: int | None = None
    ) -> None:
        """A resumable upload in ``CHUNK`` pieces; memory holds one piece (and, when ``size`` is
        not known, the next). A piece that fails is resumed at the offset the server kept; a
        session the server lost (404/410, as an emulator does after a dropped connection, or GCS
        after a week) starts over."""
        for restart in range(_RESTARTS + 1):
            try:
                self._resumable(key, chunks(), size)
                return
            except _SessionLost:
                if restart == _RESTARTS:
                    raise GcsError(
                        f"upload of gs://{self.bucket}/{key} failed: the server lost the "
                        f"upload session {_RESTARTS + 1} times"
                    ) from None

    def _resumable(self, key: str, chunks: Iterator[bytes], size: int | None) -> None:
        resp = self._request(
            "POST",
            f"{self._up}/o?uploadType=resumable&name={quote(key, safe='')}",
            body=json.dumps({"name": key}).encode(),
            headers={"Content-Type": "application/json; charset=UTF-8"},
        )
        session = resp.headers.get("Location")
        if not session:
            raise GcsError(f"no resumable session for gs://{self.bucket}/{key}")
        offset = 0
        pieces = _rechunk(chunks, CHUNK)
        if size is not None:  # the last piece is known by its end: no piece is held back
            for piece in pieces:
                last = offset + len(piece) >= size
                self._send_piece(session, piece, offset, last)
                offset += len(piece)
                if last:
                    return
            # the stream ended short of ``size``: finish with what came (the caller's size
            # check reports the file that shrank)
            self._send_piece(session, b"", offset, True)
            return
        piece = next(pieces, b"")
        while True:
            following = next(pieces, None)
            self._send_piece(session, piece, offset, following is None)
            if following is None:
                return
            offset += len(piece)
            piece = following

    def _send_piece(self, session: str, piece: bytes, offset: int, last: bool) -> None:
        total = str(offset + len(piece)) if last else "*"
        sent = 0  # bytes of this piece the server has
        deadline = time.monotonic() + self._retry_timeout
        for attempt in range(self._tries):
            body = piece[sent:]
            if body:
                rng = f"bytes {offset + sent}-{offset + len(piece) - 1}/{total}"
            else:
                rng = f"bytes */{total}"
            try:
                resp = self._session_put(session, body, rng)
            except self._urllib3.exceptions.HTTPError as e:
                if attempt + 1 >= self._tries or time.monotonic() > deadline:
                    raise GcsError(f"upload to {_clean(session)} failed: {e}") from e
                _backoff(attempt)
                sent = self._persisted(session, offset, len(piece), total)
                continue
            if resp.status in (200, 201):  # the server says the object is complete
                if not last:  # ... before its last bytes: it finalized a broken upload
                    raise _SessionLost()
                _check_size(resp.data, offset + len(piece), session)
                return
            if resp.status == 308:  # "resume incomplete": Range says what the server holds
                held = _range_end(resp.headers.get("Range")) or 0
                if held < offset:
                    raise GcsError(
                        f"upload to {_clean(session)} failed: the server lost bytes already "
                        f"sent (it holds {held}, {offset} were sent)"
                    )
                if held >= offset + len(piece) and not last:
                    return
                sent = min(len(piece), held - offset)  # send the rest (or, if all, finalize)
                continue
            if resp.status in (404, 410):
                raise _SessionLost()
            if (
                resp.status in _RETRY_STATUS
                and attempt + 1 < self._tries
                and time.monotonic() < deadline
            ):
                _backoff(attempt)
                sent = self._persisted(session, offset, len(piece), total)
                continue
            raise _status_error("PUT", _clean(session), resp.status, resp.data, "bucket")
        raise GcsError(f"upload to {_clean(session)} did not finish after {self._tries} tries")

    def _session_put(self, session: str, body: bytes, content_range: str) -> Any:
        """One PUT to a resumable session, not retried (the callers decide what a failure
        means for the bytes the server holds)."""
        return self._http.request(
            "PUT",
            session,
            body=body,
            headers={**self._auth_headers(), "Content-Range": content_range},
            redirect=False,
        )

    def _persisted(self, session: str, offset: int, size: int, total: str) -> int:
        """How much of the piece at ``offset`` the server holds (asks it; 0 when unsure)."""
        try:
            resp = self._session_put(session, b"", f"bytes */{total}")
        except self._urllib3.exceptions.HTTPError:
            return 0
        if resp.status in (200, 201):
            if total == "*":  # finalized before its last piece: start over
                raise _SessionLost()
            return size
        if resp.status in (404, 410):
            raise _SessionLost()
        end = _range_end(resp.headers.get("Range")) if resp.status == 308 else None
        return min(size, max(0, (end or offset) - offset))

    def copy(self, src: str, dst: str) -> None:
        url = f"{self._obj(src)}/rewriteTo/b/{quote(self.bucket, safe='')}/o/{quote(dst, safe='')}"
        token = ""
        while True:
            resp = self._request(
                "POST", url + (f"?rewriteToken={quote(token)}" if token else ""), missing="object"
            )
            doc = json.loads(resp.data)
            if doc.get("done", True):
                return
            token = doc["rewriteToken"]

    def delete(self, keys: str | list[str]) -> None:
        one: Callable[[str], None] = self._delete_one
        if isinstance(keys, str):
            one(keys)
        elif len(keys) == 1:
            one(keys[0])
        elif keys:
            with ThreadPoolExecutor(max_workers=min(16, len(keys))) as pool:
                list(pool.map(one, keys))

    def _delete_one(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):  # already gone
            self._request("DELETE", self._obj(key), ok=(200, 204), missing="object")


def _meta(item: dict[str, Any]) -> dict[str, Any]:
    return {"path": item["name"], "size": int(item.get("size", 0))}


def _status_error(method: str, url: str, status: int, body: bytes, missing: str) -> Exception:
    """The exception for a refused request; ``missing`` says what a 404 means here."""
    reason = _reason(body)
    text = f"HTTP {status} from {method} {_clean(url)}: {reason}"
    if status == 404 and missing == "object" and "bucket" not in reason.lower():
        return FileNotFoundError(text)
    if status == 404:
        return GcsError(f"{text} (the bucket does not exist)", status)
    if status == 412:
        return GcsPreconditionFailed(text, status)
    if status in (401, 403):
        return GcsAccessDenied(text, status)
    return GcsError(text, status)


def _check_size(body: bytes, expected: int, session: str) -> None:
    """The finished object must hold every byte sent: a shorter one means the server finalized
    an upload it did not get whole, and it must not be taken for the file."""
    try:
        size = int(json.loads(body)["size"])
    except (ValueError, KeyError, TypeError):
        return  # no object resource in the answer: nothing to compare
    if size != expected:
        raise _SessionLost()


def _clean(url: str) -> str:
    """A URL without its query string (upload session ids are bearer-like)."""
    return url.split("?", 1)[0]


def _range_end(header: str | None) -> int | None:
    """``Range: bytes=0-N`` -> N + 1 (bytes the server holds)."""
    if not header or "-" not in header:
        return None
    try:
        return int(header.rsplit("-", 1)[1]) + 1
    except ValueError:
        return None


def _rechunk(chunks: Iterator[bytes], size: int) -> Iterator[bytes]:
    """The stream cut into ``size``-byte pieces (the last may be shorter)."""
    buf = bytearray()
    for block in chunks:
        if not buf and len(block) == size:  # already the right size: no copy
            yield block
            continue
        buf += block
        while len(buf) >= size:
            yield bytes(buf[:size])
            del buf[:size]
    if buf:
        yield bytes(buf)


def _backoff(attempt: int) -> None:
    time.sleep(min(15.0, 0.1 * 2**attempt) * (0.5 + random.random() / 2))


def _seconds(value: Any, default: float) -> float:
    if value is None:
        return default
    text = str(value).strip().lower()
    for suffix, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if text.endswith(suffix) and text[: -len(suffix)].replace(".", "", 1).isdigit():
            return float(text[: -len(suffix)]) * factor
    return float(text)


def emulator_base_url() -> str | None:
    """``STORAGE_EMULATOR_HOST`` as a base URL (``host:port`` means plain HTTP)."""
    host = os.environ.get("STORAGE_EMULATOR_HOST")
    if not host:
        return None
    return (host if "://" in host else f"http://{host}").rstrip("/")
