"""The worker side of a runtime job: read the job file, run it, write the result file."""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from typing import Any


class MissingRuntime(Exception):
    """The runtime library (TensorFlow, onnxruntime) is not installed in this Python."""


def serve(handler: Callable[[dict[str, Any]], dict[str, Any]]) -> int:
    """``python -m pushgate.runtime.<x>_worker JOB RESULT``: run ``handler`` on the job."""
    if len(sys.argv) != 3:
        print("usage: python -m pushgate.runtime.<runtime>_worker JOB.json RESULT.json")
        return 2
    job_path, result_path = sys.argv[1], sys.argv[2]
    with open(job_path, encoding="utf-8") as f:
        job = json.load(f)
    code = 0
    try:
        result = {"ok": True, **handler(job)}
    except MissingRuntime as e:
        result, code = {"ok": False, "error": str(e), "missing_dependency": True}, 1
    except Exception as e:  # everything the runtime raises is a failed attempt, reported
        traceback.print_exc()
        result, code = {"ok": False, "error": f"{type(e).__name__}: {e}"}, 1
    with open(result_path, "w", encoding="utf-8") as f:
        json.dump(result, f)
    return code
