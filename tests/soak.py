"""Soak size for slow tests: "short" in CI, "full" when BASIS_SOAK=full."""

import os

SOAK = os.environ.get("BASIS_SOAK", "short")
