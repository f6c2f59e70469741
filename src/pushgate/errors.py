"""pushgate's one error tree.

::

    PushgateError                      exit 1 unless a subclass says otherwise
    ├── UsageError                     exit 2: the caller asked for something malformed
    │   ├── InputError                 exit 2: a model / blessing / artifact path is wrong
    │   └── DestinationInputError      exit 2: BASE is unusable (a file, not writable, bad URL)
    ├── MissingDependencyError         exit 2: an optional extra is not installed (with the hint)
    ├── DestinationError               exit 1: the store failed while we worked on it
    │   ├── VersionConflictError       exit 1: could not claim a version number
    │   └── StorageFullError           exit 1: no space left; partial staging was removed
    ├── ServingError                   exit 1: a model server did not answer, or not as asked
    ├── IntegrityError                 exit 3: verify found a mismatch
    └── ValidationError                exit 1: evaluate / infra-validate could not run

Every error says what was wrong, names the path or URL, and what to do. Library errors are
wrapped where they happen and chained (``raise ... from e``).
"""

from __future__ import annotations


class PushgateError(Exception):
    """Root of every error pushgate raises on purpose."""

    exit_code = 1


class UsageError(PushgateError):
    """The request itself is malformed (conflicting options, unknown policy)."""

    exit_code = 2


class InputError(UsageError):
    """A model, blessing or artifact path the caller gave is missing or unusable."""


class DestinationInputError(UsageError):
    """The destination given cannot be used (a file, not writable, an unknown URL scheme)."""


class MissingDependencyError(PushgateError):
    """An optional extra is needed; the message carries the ``pip install`` hint."""

    exit_code = 2

    def __init__(self, what: str, extra: str) -> None:
        super().__init__(f"{what} needs an optional dependency: pip install 'pushgate[{extra}]'")
        self.extra = extra


class DestinationError(PushgateError):
    """The destination failed while pushgate worked on it (I/O, network, server)."""


class VersionConflictError(DestinationError):
    """A version number could not be claimed exclusively."""


class StorageFullError(DestinationError):
    """The destination ran out of space; the partial staging copy was removed."""


class ServingError(PushgateError):
    """A model server (``--serve``) could not be reached or answered with an error."""


class IntegrityError(PushgateError):
    """What is stored does not match what the journal says was pushed."""

    exit_code = 3


class ValidationError(PushgateError):
    """A validator (evaluate, infra-validate) could not run to a verdict."""
