"""A store's failure as one pushgate error: one line, scrubbed of credentials, saying what to do
when it is the bucket, the credentials or the permissions."""

from __future__ import annotations

import re
from collections.abc import Callable

from obstore.exceptions import (
    AlreadyExistsError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
)

from pushgate.destination.stores.gcs import GcsAccessDenied, GcsPreconditionFailed
from pushgate.errors import DestinationError, DestinationInputError, PushgateError
from pushgate.secrets import scrub

# obstore (and the GCS store) raise the builtin FileNotFoundError for a missing object
NOT_FOUND = (NotFoundError, FileNotFoundError)
EXISTS = (AlreadyExistsError, PreconditionError, GcsPreconditionFailed)
_DENIED = (PermissionDeniedError, UnauthenticatedError, GcsAccessDenied)

_XML_FIELD = re.compile(r"<(Code|Message)>([^<]*)</\1>")
_HTTP_STATUS = re.compile(r"status code: (\d{3}[^:]*)")
#: in obstore's error when the AWS chain fell through to instance metadata (ECS, EC2)
_NO_CREDENTIALS = ("169.254.169.254", "169.254.170.2", "/latest/api/token")
_DENIED_CODES = (
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "ExpiredToken",
    "InvalidToken",
    "AuthenticationFailed",
    "AuthorizationFailure",
    "AuthorizationPermissionMismatch",
    "InvalidClientTokenId",
)


def first_line(e: BaseException) -> str:
    """A store error as one line: an S3/Azure XML error body becomes ``<status> <Code>:
    <Message>`` (its request ids and the raw XML dropped)."""
    text = str(e).split("\n\nDebug source", 1)[0].strip()
    fields = dict(_XML_FIELD.findall(text))
    if fields:
        status = _HTTP_STATUS.search(text)
        head = f"HTTP {status.group(1).strip()}: " if status else ""
        text = head + ": ".join(fields[k] for k in ("Code", "Message") if fields.get(k))
    text = re.sub(r"\s+", " ", text)
    return text if len(text) <= 500 else text[:500] + "…"


def store_error(
    e: BaseException, what: str, where: str, scrub: Callable[[str], str] = scrub
) -> PushgateError:
    """The pushgate error for a store's failure to do ``what`` at ``where``: one line, scrubbed,
    saying what to do when it is the bucket, the credentials or the permissions."""
    raw = str(e)
    cause = scrub(first_line(e))
    if missing_bucket(e):
        return DestinationInputError(
            f"{what} {where} failed: the bucket or container does not exist ({cause}); "
            "create it first or fix the URL"
        )
    if where.startswith("s3://") and any(s in raw for s in _NO_CREDENTIALS):
        return DestinationInputError(
            f"{what} {where} failed: no AWS credentials were found. pushgate looks for them in "
            "--storage-option access_key_id=.../secret_access_key=..., the environment "
            "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, "
            "AWS_WEB_IDENTITY_TOKEN_FILE), the profile files (AWS_PROFILE, ~/.aws/credentials, "
            "~/.aws/config) and last the instance metadata service at 169.254.169.254, which "
            f"gave none ({cause})"
        )
    if (
        isinstance(e, _DENIED)
        or " 401 " in raw
        or " 403 " in raw
        or any(c in raw for c in _DENIED_CODES)
    ):
        return DestinationInputError(
            f"{what} {where} failed: access denied ({cause}); check the credentials in the "
            "environment (AWS_*, GOOGLE_*, AZURE_*) or --storage-option"
        )
    return DestinationError(f"{what} {where} failed: {cause}")


def missing_bucket(e: BaseException) -> bool:
    text = str(e)
    return any(
        s in text
        for s in (
            "NoSuchBucket",
            "ContainerNotFound",
            "bucket does not exist",
            "The specified container does not exist",
        )
    )
