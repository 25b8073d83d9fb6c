"""Host tests of the example programs as a user starts them: ``--sim`` runs them against the
simulator, and without hardware they say what to do in one line (no traceback). The bodies of
tests/test_examples.py run the same code in-process under every runtime."""

import os
import subprocess
import sys

import pytest
from support_cli import ROOT
from xrt.pytest_plugin import interpreter_for

EXAMPLES = os.path.join(ROOT, "examples")


def run(interpreter, script, *argv):
    # from another folder and without PYTHONPATH: the examples find the checkout's lib/ and tools/
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run([interpreter, os.path.join(EXAMPLES, script)] + list(argv), capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL, cwd="/", env=env, check=False)


def test_the_cpython_example_on_the_simulator_and_without_hardware():
    good = run(sys.executable, "cpython_quickstart.py", "--sim", "UI1@1.2", "--sim-clock", "virtual", "--count", "2")
    assert good.returncode == 0 and good.stderr == "", good.stderr
    lines = good.stdout.splitlines()
    assert lines[0].startswith("rbAmp UI1 at 0x50, protocol v1.2, 1 channel(s)") and len(lines) == 4, lines
    assert all(line.startswith("avg P=") for line in lines[2:]), lines
    for argv, fragment in ((("--bus", "97"), "/dev/i2c-97 does not exist"),
                           (("--sim", "UI2", "--sim-clock", "virtual", "--addr", "0x51"), "no device acknowledges"),
                           (("--sim", "UX9"), "unknown variant 'UX9'")):
        bad = run(sys.executable, "cpython_quickstart.py", *argv)
        assert bad.returncode == 1 and bad.stdout == "", (argv, bad.stdout, bad.stderr)
        assert "Traceback" not in bad.stderr and bad.stderr.count("\n") == 1 and fragment in bad.stderr, bad.stderr


# ids without the bare runtime names: the plugin tallies "[mpy64]" items as cross-runtime ones
@pytest.mark.parametrize("runtime", ["cpython", "mpy64", "mpy32"], ids=["example-on-cpython", "example-on-mpy64",
                                                                "example-on-mpy32"])
def test_the_micropython_example_on_the_simulator_and_without_hardware(runtime):
    interpreter = sys.executable if runtime == "cpython" else interpreter_for(runtime)
    if interpreter is None:
        pytest.skip("no %s interpreter (make test builds it)" % runtime)
    good = run(interpreter, "micropython_quickstart.py", "--sim", "UI2", "--sim-clock", "virtual")
    assert good.returncode == 0 and good.stderr == "", good.stderr
    lines = good.stdout.splitlines()
    assert lines[0] == "rbAmp UI2 v1.3 at 0x50" and len(lines) == 4, lines
    bare = run(interpreter, "micropython_quickstart.py")
    assert bare.returncode == 1 and bare.stdout == "" and "Traceback" not in bare.stderr, bare.stderr
    assert bare.stderr.count("\n") == 1 and "no I2C hardware here" in bare.stderr and "--sim UI2" in bare.stderr
