"""Regenerate src/pushgate/protos/*_pb2.py from the .proto files beside them.

    python -m venv /tmp/protoc && /tmp/protoc/bin/pip install grpcio-tools
    /tmp/protoc/bin/python scripts/gen_protos.py

protoc's output is rewritten in two ways, so that one set of modules works with every protobuf
runtime from 3.20 on (TFX 1.16 environments run protobuf 3.20 - 4.x; pushgate's tests 7.x):

- the ``runtime_version`` check that new protoc emits (it refuses older runtimes) is removed;
  what remains (``AddSerializedFile`` + ``internal.builder``) is the form protoc emits since 3.20;
- the files go into pushgate's own descriptor pool (``pushgate.protos._pool.POOL``), not the
  default one, so they never clash with TensorFlow's or tensorflow-serving-api's registrations of
  the same message names in the same process.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PROTOS = SRC / "pushgate" / "protos"


def main() -> int:
    files = sorted(p.relative_to(SRC).as_posix() for p in PROTOS.glob("*.proto"))
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"-I{SRC}",
                f"--python_out={out}",
                f"--pyi_out={out}",
                *files,
            ],
            check=True,
        )
        for gen in sorted((Path(out) / "pushgate" / "protos").glob("*_pb2.py")):
            text = gen.read_text()
            text = text.replace(
                "from google.protobuf import runtime_version as _runtime_version\n", ""
            )
            text = re.sub(r"_runtime_version\.ValidateProtobufRuntimeVersion\([^)]*\)\n", "", text)
            text = text.replace("# NO CHECKED-IN PROTOBUF GENCODE\n", "")
            text = text.replace(
                "from google.protobuf.internal import builder as _builder\n",
                "from google.protobuf.internal import builder as _builder\n"
                "from pushgate.protos._pool import POOL as _POOL\n",
            )
            text = text.replace(
                "_descriptor_pool.Default().AddSerializedFile", "_POOL.AddSerializedFile"
            )
            text = text.replace(
                "from google.protobuf import descriptor_pool as _descriptor_pool\n", ""
            )
            text = "# ruff: noqa\n# mypy: ignore-errors\n" + text
            (PROTOS / gen.name).write_text(text)
            print("wrote", PROTOS / gen.name)
        for stub in sorted((Path(out) / "pushgate" / "protos").glob("*_pb2.pyi")):
            (PROTOS / stub.name).write_text("# ruff: noqa\n" + stub.read_text())
            print("wrote", PROTOS / stub.name)
    # The project's formatter over the output, so `ruff format --check` stays green.
    subprocess.run(["ruff", "format", str(PROTOS)], check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
