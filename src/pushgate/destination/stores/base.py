"""The :class:`Store` protocol: the few bucket operations the bucket protocol needs, which each
service's adapter implements; and a file object over a streamed GET."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any, Protocol

#: multipart part size and read size for big files
PART = 8 * 1024 * 1024


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


class StreamReader(io.RawIOBase):
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
