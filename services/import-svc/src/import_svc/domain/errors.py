"""Errors of the import domain.

The reason of a rejected file is shown as is to French-speaking accountants, so it is
always a complete French sentence that says where the file is wrong and how.
"""

from __future__ import annotations


class ImportDomainError(Exception):
    """Base of every error raised on purpose by the import domain."""


class FileRejectedError(ImportDomainError):
    """The file cannot be imported at all; `reason` says why, in French."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason
