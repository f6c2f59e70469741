"""``--serve`` URLs: which server speaks which protocol, where, about which model.

``triton+http://HOST:PORT/MODEL`` (KServe v2 / Triton HTTP: Triton, KServe, MLServer) and
``tfserving+http://HOST:PORT/MODEL`` (TF Serving REST); ``https`` likewise. A path before MODEL
is kept as the server's prefix (``triton+https://gw.example/ns/v2root/MODEL``). ``?mode=poll`` or
``?mode=explicit`` says how the server picks up versions (default ``auto``: ask it to load; a
server that refuses because it polls is waited for). ``user:password@`` becomes HTTP Basic auth
and is never shown.
"""

from __future__ import annotations

import base64
import urllib.parse
from dataclasses import dataclass

from pushgate.errors import UsageError

KINDS = ("triton", "tfserving")
MODES = ("auto", "poll", "explicit")


@dataclass(frozen=True)
class ServeTarget:
    """One parsed ``--serve`` URL."""

    kind: str
    #: ``http(s)://host:port[/prefix]`` without credentials
    root: str
    model: str
    mode: str = "auto"
    authorization: str | None = None

    @property
    def display(self) -> str:
        """The URL as shown to users and recorded: never with credentials."""
        q = "" if self.mode == "auto" else f"?mode={self.mode}"
        return f"{self.kind}+{self.root}/{urllib.parse.quote(self.model)}{q}"


def _bad(url: str, why: str) -> UsageError:
    shown = _hide_credentials(url)
    return UsageError(
        f"--serve {shown}: {why}; expected triton+http://HOST:PORT/MODEL or "
        "tfserving+http://HOST:PORT/MODEL (https likewise, optional ?mode=poll|explicit)"
    )


def _hide_credentials(url: str) -> str:
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"***@{host}"))


def parse_serve_url(url: str) -> ServeTarget:
    """Parse a ``--serve`` URL; :class:`UsageError` (exit 2) when it is malformed."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise _bad(url, f"not a URL ({e})") from None
    kind, plus, transport = parts.scheme.partition("+")
    if not plus or kind not in KINDS or transport not in ("http", "https"):
        raise _bad(url, f"unknown scheme {parts.scheme!r}")
    if not parts.hostname:
        raise _bad(url, "no host")
    segments = [s for s in parts.path.split("/") if s]
    if not segments:
        raise _bad(url, "no model name after the host")
    model = urllib.parse.unquote(segments[-1])
    prefix = "".join(f"/{s}" for s in segments[:-1])
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    unknown = set(query) - {"mode"}
    if unknown:
        raise _bad(url, f"unknown parameter {sorted(unknown)[0]!r}")
    mode = query.get("mode", ["auto"])[-1]
    if mode not in MODES:
        raise _bad(url, f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if kind == "tfserving" and mode == "explicit":
        raise _bad(url, "TF Serving has no load API: it polls its base path (mode=poll)")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host + (f":{port}" if port is not None else "")
    auth = None
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return ServeTarget(kind, f"{transport}://{netloc}{prefix}", model, mode, auth)
