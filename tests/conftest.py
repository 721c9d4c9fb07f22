"""Shared test helpers.

Integration tests need the real Docker daemon, a real registry, QEMU binfmt and the
cross toolchains.  Outside CI a missing piece skips them with the reason; in CI
(CI=true) it fails the run, so a green CI always means the real thing ran.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(reason: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"prerequisite missing in CI: {reason}", pytrace=False)
    pytest.skip(reason)
