"""The HTML report opened in headless Chromium (Debian's `chromium`) with every network route
dead: the plots render (their colours are on the screenshot) without fetching anything."""

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from browser import CHROMIUM, chromium_command, count_colour, read_png
from test_results_report import make_run_dir

from basis_core.results.report import write_html

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"
)


def test_report_renders_its_plots_in_headless_chromium_with_no_network(tmp_path):
    run_dir = make_run_dir(tmp_path)
    html = write_html(run_dir)
    shot = tmp_path / "shot.png"
    cmd = chromium_command(
        tmp_path / "profile",
        "--window-size=1000,2600",
        "--force-device-scale-factor=0.5",
        f"--screenshot={shot}",
        html.resolve().as_uri(),
    )
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    img = read_png(shot)
    assert img.shape[:2] == (1300, 500)  # half scale: a quarter of the pixels to decode
    # the plots drew: fill-symmetry bars (green, red), timeline (orange, olive), latency histogram and
    # lines (blue) cover real areas of the page, not just a legend swatch
    for colour, least in (
        ("#2ca02c", 5_000),
        ("#d62728", 1_200),
        ("#ff7f0e", 1_200),
        ("#bcbd22", 1_200),
        ("#1f77b4", 1_200),
    ):
        assert count_colour(img, colour) >= least, colour
