"""Helpers for the host tests of the ``rbamp`` CLI: run it in-process and capture what it prints."""

import json
import os
import subprocess
import sys

from rbamp_cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VIRTUAL = ("--sim-clock", "virtual")


class Result:
    def __init__(self, code, out, err):
        self.code = code
        self.out = out
        self.err = err

    def json(self):
        return json.loads(self.out)

    def records(self):
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


def cli(capsys, *argv, session=None):
    """Run ``rbamp argv`` in this process; argparse's own messages are captured through capsys."""
    capsys.readouterr()
    code = main(list(argv), session=session)
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def assert_one_line_error(result, code, *fragments):
    assert result.code == code, (result.code, result.out, result.err)
    assert "Traceback" not in result.err
    lines = [line for line in result.err.splitlines() if "error:" in line]
    assert len(lines) == 1, result.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def run_module(*argv, cwd=None):
    """``python -m rbamp_cli argv`` in a child process (no stdin, like CI)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(ROOT, "lib"), os.path.join(ROOT, "tools")])
    return subprocess.run([sys.executable, "-m", "rbamp_cli"] + list(argv), capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, cwd=cwd or ROOT, env=env, check=False)
