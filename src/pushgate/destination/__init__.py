"""Destinations, chosen by URL scheme in one registry and imported lazily.

=====================  ====================================================  =========
scheme                 implementation                                        extra
=====================  ====================================================  =========
(a path), ``file://``  :class:`pushgate.destination.local.LocalDestination`  —
``s3://``              :mod:`pushgate.destination.bucket` + ``stores.obstore_store``  ``s3``
``gs://``              :mod:`pushgate.destination.bucket` + ``stores.gcs``    ``gcs``
``az://``/``abfs://``  :mod:`pushgate.destination.bucket` + ``stores.obstore_store``  ``azure``
``memory://``          :mod:`pushgate.destination.bucket` + ``stores.obstore_store``  ``cloud``
=====================  ====================================================  =========

The bucket protocol (:mod:`pushgate.destination.bucket`) is one for every object store; the
adapters under :mod:`pushgate.destination.stores` each speak one service, and
:mod:`pushgate.destination.stores.options` parses the URLs and credentials they share.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from pushgate.destination.base import Destination
from pushgate.errors import DestinationInputError, MissingDependencyError

#: scheme -> (module, factory name, extra)
REGISTRY: dict[str, tuple[str, str, str]] = {
    "file": ("pushgate.destination.local", "LocalDestination", ""),
    "s3": ("pushgate.destination.bucket", "ObjectStoreDestination", "s3"),
    "gs": ("pushgate.destination.bucket", "ObjectStoreDestination", "gcs"),
    "az": ("pushgate.destination.bucket", "ObjectStoreDestination", "azure"),
    "abfs": ("pushgate.destination.bucket", "ObjectStoreDestination", "azure"),
    "memory": ("pushgate.destination.bucket", "ObjectStoreDestination", "cloud"),
}


def scheme_of(url: str) -> str:
    """The URL scheme, or ``file`` for a plain path."""
    head, sep, _ = url.partition("://")
    return head.lower() if sep else "file"


def open_destination(
    url: str, storage_options: Mapping[str, str] | None = None, *, must_exist: bool = False
) -> Destination:
    """The destination for a BASE path or URL. ``must_exist``: refuse (exit 2, naming it) a
    BASE that does not exist, for every command but push (see
    :func:`pushgate.location.require_existing_base`)."""
    if not str(url).strip():
        raise DestinationInputError(
            "the BASE path or URL is empty: give the model's base directory or URL"
        )
    dest = _open(url, storage_options)
    if must_exist:
        from pushgate.location import require_existing_base

        require_existing_base(dest)
    return dest


def _open(url: str, storage_options: Mapping[str, str] | None) -> Destination:
    scheme = scheme_of(url)
    try:
        module_name, factory, extra = REGISTRY[scheme]
    except KeyError:
        known = ", ".join(f"{s}://" for s in REGISTRY if s != "file")
        raise DestinationInputError(
            f"unknown destination scheme {scheme}:// in {url}; use a local path or one of {known}"
        ) from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise MissingDependencyError(f"{scheme}:// destinations", extra or "cloud") from e
    if scheme == "file":
        path = url[len("file://") :] if url.startswith("file://") else url
        return module.LocalDestination(path)
    return getattr(module, factory)(url, dict(storage_options or {}))
