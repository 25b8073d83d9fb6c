"""Cross-runtime test support: the helpers a test body may use under every runtime.

A cross-runtime test module sets ``RUNTIMES = ("cpython", "mpy64", "mpy32")`` at module level and
defines plain ``test_*`` functions that use ``assert``; it never imports pytest. The pytest plugin
(``xrt.pytest_plugin``) runs each function once per listed runtime::

    RUNTIMES = ("cpython", "mpy64", "mpy32")
    import xrt

    def test_wraps():
        if xrt.runtime() == "mpy32":
            ...
"""

import os


class Skip(Exception):
    """Raise from a body when the runtime lacks something the test needs (reported as skipped)."""


def runtime():
    """'cpython', 'mpy64' or 'mpy32'."""
    return os.getenv("XRT_RUNTIME") or "cpython"


def is_micropython():
    return runtime() != "cpython"


def tmp_dir():
    """A scratch directory private to this module's run on this runtime."""
    path = os.getenv("XRT_TMPDIR")
    if not path:
        raise Skip("XRT_TMPDIR not set")
    return path


def tmp_path(name):
    return tmp_dir() + "/" + name


def raises(exc_type, fn, *args, **kwargs):
    """Call fn and return the exception it raised; fail if it raised nothing or another type."""
    try:
        fn(*args, **kwargs)
    except exc_type as exc:
        return exc
    raise AssertionError("expected %s from %r" % (exc_type.__name__, fn))
