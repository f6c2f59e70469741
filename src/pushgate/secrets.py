"""One scrubber for every message pushgate shows and every journal event it writes.

A secret reaches text in many ways: a store's error quoting a signed URL, a hook echoing its
environment, a mistyped ``--storage-option secret_access_key:VALUE``. Rather than each place
guessing, everything shown or recorded goes through :func:`scrub` (text) or :func:`scrub_json`
(a JSON document), which mask:

- the values of the environment's credential variables: the well-known ones of each cloud
  (``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AZURE_STORAGE_KEY``, the ``AccountKey``
  and ``SharedAccessSignature`` of ``AZURE_STORAGE_CONNECTION_STRING``, the private key in
  ``GOOGLE_SERVICE_ACCOUNT_KEY`` ...) and any variable named like ``*SECRET*``, ``*TOKEN*``,
  ``*PASSWORD*``, ``*KEY*``, ``*CREDENTIAL*`` whose value is long enough to be a secret;
- every storage option value pushgate was given (:func:`remember_options`), except those of the
  few keys that are known not to be secret (endpoint, region, timeouts ...);
- signatures in URL query strings and passwords in URL user info.

The variables are read when text is scrubbed, so a value set after import is masked too.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
#: a variable found by its name alone must hold at least this many characters to be masked
MIN_GUESSED = 8
#: a value known to be a secret (by its variable or option name) is masked from this length
MIN_KNOWN = 4

KNOWN_SECRET_ENV = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_TOKEN",
    "AZURE_CLIENT_SECRET",
    "AZURE_STORAGE_CONNECTION_STRING",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
    "GOOGLE_OAUTH_ACCESS_TOKEN",
)
_SECRET_NAME = re.compile(
    r"secret|token|passw|key|credential|sas|signature|connection_string", re.I
)
#: names that say the value is a pointer to a secret, not the secret
_POINTER_NAME = re.compile(r"(_FILE|_PATH|_DIR|_ID|_URL|_URI|_ENDPOINT|_HOST|_REGION)$", re.I)
#: storage option keys whose values are shown (everything else is masked)
_PLAIN_OPTION = re.compile(
    r"^(aws_)?(endpoint(_url)?|region|base_url|bucket|container(_name)?|account_name|"
    r"profile|allow_http|allow_invalid_certificates|.*timeout|max_retries|retry_.*|"
    r"use_.*|skip_signature|virtual_hosted_style_request|http[12]_only|user_agent|"
    r"proxy_url|randomize_addresses|unsigned_payload|disable_tagging|checksum.*|"
    r"default_.*|imdsv1_fallback|conditional_put|copy_if_not_exists|s3_express|.*_path|"
    r".*_file)$",
    re.I,
)
_URL_QUERY_SECRET = re.compile(
    r"([?&](?:sig|signature|X-Amz-Signature|X-Amz-Security-Token|X-Amz-Credential|"
    r"X-Goog-Signature|X-Goog-Credential|se|sv|st|sp|skoid|sktid|token|access_token)=)[^&\s\"']+",
    re.I,
)
_URL_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@", re.I)

_FLAG_VALUES = {"true", "false", "yes", "no", "on", "off", "none", "null"}
_remembered: set[str] = set()
_lock = threading.Lock()


def remember(values: Iterable[str]) -> None:
    """Mask these values from now on in this process (a secret given some other way)."""
    with _lock:
        _remembered.update(v for v in values if v and len(v) >= MIN_KNOWN)


def remember_options(options: Mapping[str, Any]) -> None:
    """Mask the values of storage options, except those of keys known not to be secret (and
    flags: masking every ``true`` would garble messages)."""
    remember(
        str(v)
        for k, v in options.items()
        if v is not None
        and not _PLAIN_OPTION.match(str(k).strip())
        and str(v).strip().lower() not in _FLAG_VALUES
    )


def _value_parts(name: str, value: str) -> list[str]:
    """A variable's value, plus the secrets inside it (connection strings, key files as JSON)."""
    parts = [value]
    if name == "AZURE_STORAGE_CONNECTION_STRING" or "AccountKey=" in value:
        for item in value.split(";"):
            key, sep, v = item.partition("=")
            if sep and _SECRET_NAME.search(key):
                parts.append(v.strip())
    if value.lstrip().startswith("{"):
        try:
            doc = json.loads(value)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            for key, v in doc.items():
                if isinstance(v, str) and _SECRET_NAME.search(key):
                    parts.append(v)
                    parts.extend(line for line in v.splitlines() if len(line) >= MIN_GUESSED)
    return parts


def environment_secrets(environ: Mapping[str, str] | None = None) -> set[str]:
    """The credential values in ``environ`` (default: this process's environment)."""
    env = os.environ if environ is None else environ
    out: set[str] = set()
    for name, value in env.items():
        if not value:
            continue
        if name.upper() in KNOWN_SECRET_ENV:
            out.update(v for v in _value_parts(name.upper(), value) if len(v) >= MIN_KNOWN)
        elif (
            _SECRET_NAME.search(name)
            and not _POINTER_NAME.search(name)
            and len(value) >= MIN_GUESSED
            and not os.path.isabs(value)  # a path to a key file, not the key
        ):
            out.update(v for v in _value_parts(name, value) if len(v) >= MIN_GUESSED)
    return out


class Scrubber:
    """Masks a fixed set of secret values (longest first), URL signatures and URL passwords."""

    def __init__(self, values: Iterable[str]) -> None:
        self.values = sorted(
            {v for v in values if v and len(v) >= MIN_KNOWN}, key=len, reverse=True
        )

    def __call__(self, text: str) -> str:
        for v in self.values:
            if v in text:
                text = text.replace(v, MASK)
        text = _URL_QUERY_SECRET.sub(rf"\1{MASK}", text)
        return _URL_USERINFO.sub(rf"\1{MASK}@", text)

    def json(self, doc: Any) -> Any:
        """A copy of a JSON-like document with every string value scrubbed; strings of digits
        (version numbers) are left alone, as no secret is only digits."""
        if isinstance(doc, str):
            return doc if doc.isdigit() else self(doc)
        if isinstance(doc, Mapping):
            return {k: self.json(v) for k, v in doc.items()}
        if isinstance(doc, (list, tuple)):
            return [self.json(v) for v in doc]
        return doc


def scrubber(extra: Iterable[str] = ()) -> Scrubber:
    """The scrubber as of now: the environment, the remembered values and ``extra``."""
    with _lock:
        known = set(_remembered)
    return Scrubber(environment_secrets() | known | set(extra))


def scrub(text: str) -> str:
    """``text`` with every known secret masked."""
    return scrubber()(text)


def scrub_json(doc: Any) -> Any:
    """A copy of a JSON-like document with every known secret masked in its strings."""
    return scrubber().json(doc)


def clean_url(url: str) -> str:
    """The URL without a query string or user info (where credentials could hide)."""
    head, sep, rest = url.partition("://")
    rest = rest.split("?", 1)[0]
    host, slash, path = rest.partition("/")
    if "@" in host and head.lower() not in ("abfs", "abfss"):
        host = host.rsplit("@", 1)[1]
    return f"{head}{sep}{host}{slash}{path}".rstrip("/")
