"""Errors raised for bad input.

Every message names the offending file (or option), says what is wrong and what to do.
The CLI prints these without a traceback and exits with status 2.
"""

from __future__ import annotations


class NerfkitError(Exception):
    """Base class of every error caused by user input or the environment."""


class DataError(NerfkitError):
    """A dataset file is missing, unreadable or inconsistent."""


class PoseError(DataError):
    """A camera pose or intrinsic is non-finite, non-rigid or impossible."""


class ConfigError(NerfkitError):
    """An option has an impossible value or an unknown name."""


class RunError(NerfkitError):
    """A run directory or checkpoint is missing or unusable."""
