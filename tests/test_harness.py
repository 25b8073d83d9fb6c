"""The cross-runtime harness cannot pass silently: seeded failures fail under every runtime.

Host-only (runs pytest in a subprocess on a scratch project); no RUNTIMES, so plain pytest.
"""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from xrt.pytest_plugin import ALL_RUNTIMES, interpreter_for

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BODIES = '''
RUNTIMES = ("cpython", "mpy64", "mpy32")


def test_passes():
    assert 1 + 1 == 2


def test_assert_fails():
    assert 1 + 1 == 3, "seeded failure"


def test_raises_oserror():
    raise OSError(5)


def test_float_precision_differs():
    # 2**24 + 1 is exact in a double but not in a float32: only mpy32 rounds it away.
    import xrt
    rounded = float(16777217) == 16777216.0
    assert rounded == (xrt.runtime() == "mpy32")
'''

CRASH = '''
RUNTIMES = ("mpy64", "mpy32")


def test_a_before_crash():
    pass


def test_b_kills_interpreter():
    import os
    os.system("kill -9 $PPID")


def test_c_after_crash():
    pass
'''

BROKEN_IMPORT = '''
RUNTIMES = ("cpython", "mpy64", "mpy32")
import module_that_does_not_exist


def test_never_runs():
    pass
'''


def _available_runtimes():
    return [r for r in ALL_RUNTIMES if r == "cpython" or interpreter_for(r)]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    work = tmp_path_factory.mktemp("xrt-selftest")
    (work / "test_bodies.py").write_text(BODIES)
    (work / "test_crash.py").write_text(CRASH)
    (work / "test_broken.py").write_text(BROKEN_IMPORT)
    (work / "pytest.ini").write_text("[pytest]\n")
    report = work / "report.xml"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(REPO, "tools"), os.path.join(REPO, "lib")])
    env.pop("CI", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "xrt.pytest_plugin", "-c", str(work / "pytest.ini"),
         "--rootdir", str(work), "--junitxml", str(report), "-q", str(work)],
        cwd=str(work), env=env, capture_output=True, text=True, timeout=600,
    )
    results = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        elif case.find("skipped") is not None:
            outcome = "skipped"
        else:
            outcome = "passed"
        results[case.get("name")] = outcome
    return proc, results


def test_seeded_failures_fail_under_every_runtime(outcomes):
    proc, results = outcomes
    assert proc.returncode == 1, proc.stdout[-3000:]
    for runtime in _available_runtimes():
        assert results["test_passes[%s]" % runtime] == "passed"
        assert results["test_assert_fails[%s]" % runtime] == "failed"
        assert results["test_raises_oserror[%s]" % runtime] == "failed"
        assert results["test_float_precision_differs[%s]" % runtime] == "passed"
        assert results["test_never_runs[%s]" % runtime] == "failed"


def test_interpreter_crash_fails_the_running_and_remaining_tests(outcomes):
    _, results = outcomes
    ran = [r for r in ("mpy64", "mpy32") if interpreter_for(r)]
    if not ran:
        pytest.skip("no MicroPython interpreter available")
    for runtime in ran:
        assert results["test_a_before_crash[%s]" % runtime] == "passed"
        assert results["test_b_kills_interpreter[%s]" % runtime] == "failed"
        assert results["test_c_after_crash[%s]" % runtime] == "failed"


def test_summary_counts_each_runtime(outcomes):
    proc, _ = outcomes
    for runtime in _available_runtimes():
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith(runtime + " ")]
        assert line, proc.stdout[-2000:]
        assert " passed, " in line[0] and " failed" in line[0]


def test_ci_requires_every_interpreter(tmp_path):
    (tmp_path / "test_one.py").write_text('RUNTIMES = ("mpy32",)\n\ndef test_x():\n    pass\n')
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.join(REPO, "tools")
    env["CI"] = "true"
    env["XRT_MPY32"] = str(tmp_path / "no-such-interpreter")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "xrt.pytest_plugin", "-c", str(tmp_path / "pytest.ini"),
         "--rootdir", str(tmp_path), "-q", str(tmp_path)],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1, proc.stdout
    assert "mpy32 interpreter not available" in proc.stdout
