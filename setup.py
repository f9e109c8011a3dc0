"""Build configuration for the optional C fast paths (everything else is in pyproject.toml).

The extension is optional: if it cannot be compiled, tracethread installs and runs on its
pure-Python fast paths (slower; see the benchmark table in the README).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("tracethread._speedups", ["tracethread/_speedups.c"], optional=True,
                  extra_compile_args=["-O2"]),
    ],
)
