"""The installed package version, part of every run id and of every results directory."""

from __future__ import annotations

import functools
import importlib.metadata


@functools.cache
def package_version() -> str:
    """The installed sweepengine version (part of every run id)."""
    try:
        return importlib.metadata.version("sweepengine")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"
