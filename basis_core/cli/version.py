"""Print the version of basis and of the libraries it runs on (numpy, numba, Python)."""

from __future__ import annotations

import argparse
import sys

from .. import __version__

NAME = "version"
HELP = "print versions"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def main(args: argparse.Namespace) -> int:
    import numba
    import numpy

    print(f"basis {__version__}")
    print(f"numpy {numpy.__version__}, numba {numba.__version__}, python {sys.version.split()[0]}")
    return 0
