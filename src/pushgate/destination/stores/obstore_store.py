"""The :class:`~pushgate.destination.stores.base.Store` adapter for S3, Azure Blob and process
memory, on obstore."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import obstore

from pushgate.destination.stores.base import PART

#: multipart parts in flight per big file; with the bucket protocol's few big files at once this
#: bounds memory
PART_CONCURRENCY = 4


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
