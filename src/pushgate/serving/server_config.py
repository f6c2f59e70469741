"""The server configuration that makes labels real: which versions a server loads, and (TF
Serving) which label names which version.

``--server-config`` names one target; it is remembered at BASE (``.pushgate/server-configs.json``)
so every later label move, ``push --label`` and ``promote`` rewrites it:

- ``triton``: the ``version_policy`` of ``<BASE>/config.pbtxt`` becomes
  ``version_policy: { specific: { versions: [...] } }`` with exactly the labelled versions
  (``latest { num_versions: 1 }``, Triton's default, when no label is left). Nothing else in the
  file changes, byte for byte; a missing or unparsable ``config.pbtxt`` is refused.
- ``tfserving:PATH_OR_URL[?model=NAME&base_path=PATH]``: TF Serving's ``--model_config_file``, a
  ModelServerConfig text proto with one model (``NAME``, default BASE's last path component),
  ``model_version_policy { specific { versions: ... } }`` and ``version_labels``. pushgate owns
  that file: it refuses to replace one it did not write (its first line says who wrote it).
  ``base_path`` is BASE as the server sees it (default: BASE as given).

Every file is replaced whole and atomically (:meth:`Destination.write_file`).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pushgate.destination.base import Destination
from pushgate.errors import DestinationError, InputError, UsageError

TRITON_CONFIG = "config.pbtxt"
#: the first line of a TF Serving config file pushgate wrote (it replaces no other file)
TFS_HEADER = "# Written by pushgate: labels of BASE "


@dataclass(frozen=True)
class ServerConfig:
    """One parsed ``--server-config``."""

    kind: str
    #: tfserving: where the model_config_file lives (a path or URL)
    location: str = ""
    model: str = ""
    base_path: str = ""

    @property
    def spec(self) -> str:
        """The option's text, as remembered at BASE."""
        if self.kind == "triton":
            return "triton"
        query = {k: v for k, v in (("model", self.model), ("base_path", self.base_path)) if v}
        return f"tfserving:{self.location}" + (f"?{urllib.parse.urlencode(query)}" if query else "")


def parse_server_config(spec: str) -> ServerConfig:
    """Parse ``triton`` or ``tfserving:PATH_OR_URL[?model=NAME&base_path=PATH]`` (exit 2 else)."""
    if spec == "triton":
        return ServerConfig("triton")
    kind, sep, rest = spec.partition(":")
    if kind != "tfserving" or not sep or not rest.strip():
        raise UsageError(
            f"--server-config {spec!r}: expected 'triton' (BASE/config.pbtxt) or "
            "'tfserving:PATH_OR_URL' (TF Serving's --model_config_file)"
        )
    location, _, query = rest.partition("?")
    params = urllib.parse.parse_qs(query, keep_blank_values=True)
    unknown = set(params) - {"model", "base_path"}
    if unknown:
        raise UsageError(
            f"--server-config {spec!r}: unknown parameter {sorted(unknown)[0]!r} "
            "(known: model, base_path)"
        )
    model = params.get("model", [""])[-1]
    if model and not re.fullmatch(r"[A-Za-z0-9_.-]+", model):
        raise UsageError(f"--server-config {spec!r}: not a model name: {model!r}")
    return ServerConfig("tfserving", location, model, params.get("base_path", [""])[-1])


# -- Triton's config.pbtxt ----------------------------------------------------------------------
_OPEN, _CLOSE = "{[<", "}]>"


def _skip(text: str, i: int) -> int:
    """Index of the next token after whitespace and ``#`` comments."""
    while i < len(text):
        if text[i].isspace():
            i += 1
        elif text[i] == "#":
            end = text.find("\n", i)
            i = len(text) if end < 0 else end + 1
        else:
            break
    return i


def _scan(text: str, where: str) -> list[tuple[str, int, int, int]]:
    """``(name, start, value start, end)`` of every top-level field of a text proto; raises
    :class:`InputError` when the text is not well formed (unbalanced, unterminated string)."""
    fields: list[tuple[str, int, int, int]] = []
    depth, i, n = 0, 0, len(text)
    stack: list[str] = []
    current: tuple[str, int, int] | None = None
    while True:
        i = _skip(text, i)
        if i >= n:
            break
        c = text[i]
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                if text[j] == "\n":
                    break
                j += 2 if text[j] == "\\" else 1
            if j >= n or text[j] != c:
                raise InputError(f"{where}: unterminated string at offset {i}; fix the file")
            i = j + 1
        elif c in _OPEN:
            stack.append(_CLOSE[_OPEN.index(c)])
            depth += 1
            i += 1
        elif c in _CLOSE:
            if not stack or stack.pop() != c:
                raise InputError(f"{where}: unbalanced {c!r} at offset {i}; fix the file")
            depth -= 1
            i += 1
            if depth == 0 and current is not None:
                fields.append((*current, i))
                current = None
        elif re.match(r"[A-Za-z_]", c):
            m = re.compile(r"[A-Za-z_][A-Za-z0-9_.+-]*").match(text, i)
            assert m is not None
            if depth == 0:
                if current is not None:  # the previous field was a scalar ending at its value
                    fields.append((*current, current[2]))
                j = _skip(text, m.end())
                if j < n and text[j] == ":":
                    j = _skip(text, j + 1)
                if j < n and text[j] in _OPEN:
                    current = (m.group(), i, j)
                else:
                    current = None
                    fields.append((m.group(), i, j, _scalar_end(text, j, where)))
                    i = fields[-1][3]
                    continue
            i = m.end()
        else:
            i += 1
    if stack:
        raise InputError(f"{where}: unbalanced brackets (missing {stack[-1]!r}); fix the file")
    return fields


def _scalar_end(text: str, i: int, where: str) -> int:
    if i < len(text) and text[i] in "\"'":
        q, j = text[i], i + 1
        while j < len(text) and text[j] != q and text[j] != "\n":
            j += 2 if text[j] == "\\" else 1
        if j >= len(text) or text[j] != q:
            raise InputError(f"{where}: unterminated string at offset {i}; fix the file")
        return j + 1
    m = re.compile(r"[^\s{}\[\]<>#,;]*").match(text, i)
    if m is None or m.end() == i:
        raise InputError(f"{where}: a field without a value at offset {i}; fix the file")
    return m.end()


def triton_policy(versions: list[str]) -> str:
    if not versions:
        return "version_policy: { latest: { num_versions: 1 } }"
    listed = ", ".join(sorted(versions, key=int))
    return f"version_policy: {{ specific: {{ versions: [ {listed} ] }} }}"


def edit_triton_config(text: str, versions: list[str], where: str) -> str:
    """``text`` with only its top-level ``version_policy`` replaced (or appended)."""
    fields = _scan(text, where)
    if not any(name in ("name", "backend", "platform", "input", "output") for name, *_ in fields):
        raise InputError(
            f"{where}: does not look like a Triton model configuration (no name, backend, "
            "platform, input or output field); fix it or drop --server-config triton"
        )
    policy = triton_policy(versions)
    found = [(s, e) for name, s, _v, e in fields if name == "version_policy"]
    if len(found) > 1:
        raise InputError(f"{where}: version_policy appears {len(found)} times; keep one")
    if found:
        start, end = found[0]
        return text[:start] + policy + text[end:]
    sep = "" if not text or text.endswith("\n") else "\n"
    return f"{text}{sep}{policy}\n"


def check_triton_config(dest: Destination) -> None:
    """Refuse (exit 2) when BASE has no readable ``config.pbtxt`` this module can edit."""
    where, text, _tag = _read_triton(dest)
    edit_triton_config(text, [], where)


def _read_triton(dest: Destination) -> tuple[str, str, str | None]:
    where = f"{dest.url.rstrip('/')}/{TRITON_CONFIG}"
    raw, tag = dest.read_file(TRITON_CONFIG)
    if raw is None:
        raise InputError(
            f"no {where}: --server-config triton edits the version_policy of the model's "
            "config.pbtxt in BASE; write the model configuration there first"
        )
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise InputError(f"{where} is not UTF-8 text; fix the file") from None
    return where, text, tag


#: what the configs must say, read fresh at each attempt: (versions to load, labels)
State = Callable[[], tuple[list[str], Mapping[str, str]]]
#: attempts at a conditional write before giving up (each loses only to another writer)
ATTEMPTS = 20


def _replace(
    holder: Destination, rel: str, where: str, render: Callable[[bytes | None], bytes]
) -> None:
    """Read ``rel``, ``render`` its new bytes from what was read, write them only if nobody
    wrote it meanwhile (:meth:`Destination.write_file_conditional`); again when someone did."""
    for _ in range(ATTEMPTS):
        raw, tag = holder.read_file(rel)
        new = render(raw)
        if new == raw or holder.write_file_conditional(rel, new, tag):
            return
    raise DestinationError(
        f"{where} kept changing while pushgate wrote it ({ATTEMPTS} attempts); run the label "
        "command again"
    )


def write_triton(dest: Destination, state: State) -> str:
    where = f"{dest.url.rstrip('/')}/{TRITON_CONFIG}"

    def render(raw: bytes | None) -> bytes:
        if raw is None:
            _read_triton(dest)  # raises: the file is gone
        text = (raw or b"").decode(errors="strict")
        versions, _labels = state()  # after the read: a move written since is in it
        return edit_triton_config(text, versions, where).encode()

    _read_triton(dest)  # missing, not UTF-8: refused with what to do
    _replace(dest, TRITON_CONFIG, where, render)
    return where


# -- TF Serving's model_config_file -------------------------------------------------------------
def render_tfserving(
    model: str, base_path: str, versions: list[str], labels: Mapping[str, str], base: str
) -> str:
    """A ModelServerConfig text proto for one model."""
    ordered = sorted(versions, key=int)
    lines = [
        f"{TFS_HEADER}{base}",
        "# (every label move rewrites it: edit labels with 'pushgate label', not by hand)",
        "model_config_list {",
        "  config {",
        f"    name: {_quote(model)}",
        f"    base_path: {_quote(base_path)}",
        '    model_platform: "tensorflow"',
    ]
    if ordered:
        lines.append("    model_version_policy {")
        lines.append("      specific {")
        lines += [f"        versions: {v}" for v in ordered]
        lines += ["      }", "    }"]
    else:
        lines.append("    model_version_policy { latest { num_versions: 1 } }")
    for name in sorted(labels):
        lines += [
            "    version_labels {",
            f"      key: {_quote(name)}",
            f"      value: {labels[name]}",
            "    }",
        ]
    lines += ["  }", "}", ""]
    return "\n".join(lines)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _split_location(location: str) -> tuple[str, str]:
    if "://" in location:
        parent, _, name = location.rstrip("/").rpartition("/")
        if "://" not in parent or parent.endswith(":/"):
            raise UsageError(f"--server-config tfserving:{location}: no file name in the URL")
        return parent, name
    from pathlib import Path

    path = Path(location).expanduser().absolute()
    return str(path.parent), path.name


def write_tfserving(
    dest: Destination,
    config: ServerConfig,
    state: State,
    storage_options: Mapping[str, str] | None = None,
) -> str:
    from pushgate.destination import open_destination

    parent, name = _split_location(config.location)
    holder = open_destination(parent, storage_options)
    where = config.location
    model = config.model or dest.url.rstrip("/").rsplit("/", 1)[-1]

    def render(raw: bytes | None) -> bytes:
        old = None if raw is None else raw.decode(errors="replace")
        if old is not None and not old.startswith(TFS_HEADER):
            raise InputError(
                f"{where} exists and was not written by pushgate; pushgate replaces only a "
                "model_config_file it wrote (one model per file): give another path"
            )
        if old is not None and not old.startswith(TFS_HEADER + dest.url + "\n"):
            raise InputError(
                f"{where} holds the labels of another BASE; give one file per model (BASE)"
            )
        versions, labels = state()
        text = render_tfserving(model, config.base_path or dest.url, versions, labels, dest.url)
        return text.encode()

    _replace(holder, name, where, render)
    return where


def write_server_configs(
    dest: Destination,
    configs: list[ServerConfig],
    state: State,
    storage_options: Mapping[str, str] | None = None,
) -> list[str]:
    """Write every configured server's file from ``state()`` (versions loaded, labels named),
    read after each file's current content, with a conditional write. Returns the locations."""
    out = []
    for config in configs:
        if config.kind == "triton":
            out.append(write_triton(dest, state))
        else:
            out.append(write_tfserving(dest, config, state, storage_options))
    return out
