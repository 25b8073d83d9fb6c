"""Runs the test functions of one module under the current interpreter (MicroPython or CPython).

usage: micropython -m xrt.runner MODULE RESULTS_FILE [TEST_NAME ...]

Each finished test appends one JSON line to RESULTS_FILE and flushes it, so a crash of the
interpreter leaves the results so far and the plugin reports the rest as failed.
"""

import io
import json
import sys
import time

import xrt


def _now_ms():
    if hasattr(time, "ticks_ms"):
        return time.ticks_ms()
    return int(time.monotonic() * 1000)


def _format_exception(exc):
    buf = io.StringIO()
    if hasattr(sys, "print_exception"):
        sys.print_exception(exc, buf)
    else:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=buf)
    return buf.getvalue()


def _record(out, name, status, elapsed_ms, detail):
    out.write(json.dumps({"name": name, "status": status, "ms": elapsed_ms, "detail": detail}))
    out.write("\n")
    out.flush()


def run(module_name, results_path, names):
    out = open(results_path, "a")
    try:
        module = __import__(module_name)
    except BaseException as exc:  # noqa: B036 - an import failure fails every test of the module
        _record(out, "*", "error", 0, "import of %s failed:\n%s" % (module_name, _format_exception(exc)))
        out.close()
        return 1
    if not names:
        names = [n for n in dir(module) if n.startswith("test_")]
    failures = 0
    for name in names:
        fn = getattr(module, name, None)
        if fn is None:
            _record(out, name, "error", 0, "no such test function")
            failures += 1
            continue
        start = _now_ms()
        try:
            fn()
        except xrt.Skip as exc:
            _record(out, name, "skipped", 0, str(exc))
            continue
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: B036 - a test body failing in any way is a failure
            if hasattr(time, "ticks_diff"):
                elapsed = time.ticks_diff(_now_ms(), start)
            else:
                elapsed = _now_ms() - start
            _record(out, name, "failed", elapsed, _format_exception(exc))
            failures += 1
            continue
        if hasattr(time, "ticks_diff"):
            elapsed = time.ticks_diff(_now_ms(), start)
        else:
            elapsed = _now_ms() - start
        _record(out, name, "passed", elapsed, "")
    out.close()
    return 1 if failures else 0


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        print("usage: runner MODULE RESULTS_FILE [TEST_NAME ...]")
        sys.exit(2)
    sys.exit(run(args[0], args[1], args[2:]))


if __name__ == "__main__":
    main()
