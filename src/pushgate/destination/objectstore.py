"""Object-store destinations, by the names other modules import (the code lives by concern in
:mod:`pushgate.destination.bucket`, the bucket protocol, and :mod:`pushgate.destination.stores`,
one adapter per service plus the URL and credential parsing they share)."""

from __future__ import annotations

from pushgate.destination.bucket import ObjectStoreDestination
from pushgate.destination.stores.base import Store
from pushgate.destination.stores.errors import NOT_FOUND, missing_bucket, store_error
from pushgate.destination.stores.obstore_store import Obstore
from pushgate.destination.stores.options import (
    open_store,
    parse_azure_connection_string,
    split_url,
)

# the names pushed_model.py used before the split
_NOT_FOUND = NOT_FOUND
_missing_bucket = missing_bucket

__all__ = [
    "NOT_FOUND",
    "ObjectStoreDestination",
    "Obstore",
    "Store",
    "missing_bucket",
    "open_store",
    "parse_azure_connection_string",
    "split_url",
    "store_error",
]
