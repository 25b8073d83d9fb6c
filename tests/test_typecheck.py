"""pyright over the board code against each board's MicroPython stubs (tools/typecheck/).

Zero errors is the bar; the configs say which findings stay warnings and why. On failure the
message is pyright's own list of errors. A control file with a call the board's `machine` module
does not have proves the stubs are the ones in use. Host-side tests.
"""

import json
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYRIGHT = os.path.join(ROOT, ".venv", "bin", "pyright")
BOARDS = ("rp2", "esp32")


def pyright(board, *files):
    config = os.path.join(ROOT, "tools", "typecheck", "pyright-%s.json" % board)
    stubs = os.path.join(ROOT, ".cache", "stubs", board)
    assert os.path.isdir(stubs), "no stubs in %s: run `make stubs`" % stubs
    env = dict(os.environ, PYRIGHT_PYTHON_IGNORE_WARNINGS="1")  # no newer-version check on PyPI
    done = subprocess.run([PYRIGHT, "-p", config, "--outputjson"] + list(files), capture_output=True,
                          text=True, timeout=300, cwd=ROOT, stdin=subprocess.DEVNULL, env=env)
    assert done.stdout.startswith("{"), done.stdout + done.stderr
    return json.loads(done.stdout)


def errors_of(result):
    return ["%s:%d: %s (%s)" % (os.path.relpath(d["file"], ROOT), d["range"]["start"]["line"] + 1,
                               d["message"], d.get("rule", ""))
            for d in result["generalDiagnostics"] if d["severity"] == "error"]


@pytest.mark.parametrize("board", BOARDS)
def test_board_code_type_checks_against_the_micropython_stubs(board):
    result = pyright(board)
    assert errors_of(result) == [], "\n".join(errors_of(result))
    assert result["summary"]["errorCount"] == 0
    assert result["summary"]["filesAnalyzed"] >= 25, result["summary"]  # lib/ was found


@pytest.mark.parametrize("board", BOARDS)
def test_a_call_the_board_lacks_is_an_error(board, tmp_path):
    control = tmp_path / "control.py"
    control.write_text("import machine\nmachine.I2C(0).read_everything_at_once()\n")
    errors = errors_of(pyright(board, str(control)))
    assert len(errors) == 1 and "read_everything_at_once" in errors[0], errors
