"""The error a user can fix (defined in flautim.errors, below the web and the worker)."""

from flautim.errors import UserFacingError

__all__ = ["UserFacingError"]
