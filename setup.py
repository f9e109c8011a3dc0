"""Build configuration for the optional C fast paths (everything else is in pyproject.toml).

The extension is optional: if it cannot be compiled, tracethread installs and runs on its
pure-Python fast paths (slower; see the benchmark table in the README).

Its sources are the files of tracethread/_speedups.src/ (which file holds what: the comment
at the top of _speedups.h).
"""

from setuptools import Extension, setup

SRC = "tracethread/_speedups.src"

setup(
    ext_modules=[
        Extension("tracethread._speedups",
                  [f"{SRC}/{name}.c" for name in
                   ("module", "record", "lock", "condition", "summary", "info")],
                  depends=[f"{SRC}/_speedups.h"], optional=True,
                  extra_compile_args=["-O2"]),
    ],
)
