"""Everything else is in pyproject.toml; this only adds the compiled forwarding path."""

from setuptools import setup

setup(cffi_modules=["sfu/_fastpath_build.py:ffibuilder"])
