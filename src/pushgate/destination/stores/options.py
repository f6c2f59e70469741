"""Object-store URLs, storage options and credential chains: which service a URL names, its
bucket and prefix, the options that go to the HTTP client or the store, the retry policy, and
what each cloud's standard chain misses (AWS profiles through boto3, an Azure connection string,
the GCS emulator variable). :func:`open_store` opens the service's adapter."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pushgate.destination.stores.errors import first_line
from pushgate.errors import DestinationInputError, MissingDependencyError
from pushgate.secrets import clean_url, remember_options, scrub

if TYPE_CHECKING:
    from pushgate.destination.stores.base import Store

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
_MEMORY: dict[str, Any] = {}  # bucket name -> obstore MemoryStore
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
        raise DestinationInputError(f"AWS profile {profile!r}: {first_line(e)}") from e
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
    from obstore.store import MemoryStore, from_url

    from pushgate.destination.stores.gcs import GcsJsonStore, emulator_base_url
    from pushgate.destination.stores.obstore_store import Obstore

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
            f"cannot open {clean_url(url)}: {scrub(first_line(e))}; check --storage-option keys "
            "and the environment"
        ) from e
    return store, prefix, scrub
