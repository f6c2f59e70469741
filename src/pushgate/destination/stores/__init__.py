"""Store adapters, one per service, under the bucket protocol of
:mod:`pushgate.destination.bucket`, and what they share:

- :mod:`.options`: object-store URLs, storage options and each cloud's credential chain;
  :func:`.options.open_store` picks the adapter for a URL;
- :mod:`.base`: the :class:`~.base.Store` protocol every adapter implements;
- :mod:`.obstore_store`: S3, Azure Blob and process memory, on obstore;
- :mod:`.gcs`: Google Cloud Storage, on its JSON API;
- :mod:`.errors`: a store's failure as one scrubbed pushgate error.

Nothing here is imported by ``import pushgate``: the destination registry loads it on demand.
"""
