"""Object-store destinations, by the names other modules import (the code lives by concern in
:mod:`pushgate.destination.bucket`, the bucket protocol, and :mod:`pushgate.destination.stores`,
one adapter per service plus the URL and credential parsing they share)."""

from __future__ import annotations

from pushgate.destination.bucket import ObjectStoreDestination
from pushgate.destination.stores.base import Store
from pushgate.destination.stores.errors import store_error
from pushgate.destination.stores.obstore_store import Obstore
from pushgate.destination.stores.options import (
    open_store,
    parse_azure_connection_string,
    split_url,
)

__all__ = [
    "ObjectStoreDestination",
    "Obstore",
    "Store",
    "open_store",
    "parse_azure_connection_string",
    "split_url",
    "store_error",
]
