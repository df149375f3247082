"""The installed package version, part of every run id and of every results directory."""

from __future__ import annotations

import functools
import importlib.metadata

# How run ids are made (sweep.spec.Run): the first 16 hex digits of sha256 over
# "run:" + the canonical JSON of the run's content, package version included.
# Recorded in every results directory's manifest; a change here changes every id.
RUN_ID_SCHEME = "sha256-content-v1"


@functools.cache
def package_version() -> str:
    """The installed sweepengine version (part of every run id)."""
    try:
        return importlib.metadata.version("sweepengine")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"
