from __future__ import annotations


class AccountsError(Exception):
    """Base class for errors the accounts services raise on purpose."""


class UnderMinimumAge(AccountsError):
    """The person is younger than the minimum age; no account may be created."""
