"""Build glue: compiles the Cython sources in ext/ into the basis_ext package.

All project metadata lives in pyproject.toml; this file only declares extension modules,
which setuptools cannot yet take from pyproject.toml.
"""
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

HERE = Path(__file__).parent
extensions = [
    Extension(
        f"basis_ext.{pyx.stem}",
        [f"ext/{pyx.name}"],
        include_dirs=[numpy.get_include()],
        extra_compile_args=["-O3"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    for pyx in sorted((HERE / "ext").glob("*.pyx"))
]

setup(
    packages=["basis_ext", *find_packages(include=["basis_core*", "adapters*"])],
    ext_modules=cythonize(extensions, language_level=3, compiler_directives={"boundscheck": False, "wraparound": False}),
)
