import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: "short" in CI, "full" when BASIS_SOAK=full: slow soaks pick their sizes from this.
SOAK = os.environ.get("BASIS_SOAK", "short")
