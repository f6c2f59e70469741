"""Close the loop with the model server: after a publish, make the server load the new
version, require it to be ready (and to answer), withdraw it when it does not; and compare
what is published with what a server reports (``pushgate status``).

Protocols: KServe v2 / Triton HTTP (``triton+http(s)://``) and TF Serving REST
(``tfserving+http(s)://``), over urllib.
"""

from __future__ import annotations

from pushgate.serving.check import (
    ServerCheck,
    ServeReport,
    ServeRequest,
    confirm,
    confirm_published,
    probe,
)
from pushgate.serving.target import ServeTarget, parse_serve_url

__all__ = [
    "ServeReport",
    "ServeRequest",
    "ServeTarget",
    "ServerCheck",
    "confirm",
    "confirm_published",
    "parse_serve_url",
    "probe",
]
