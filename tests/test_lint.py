"""ruff over the board code (lib/, boot.py, main.py) with the MicroPython-minded rules of ruff.toml,
and pyflakes over the host code (tools/, tests/, firmware/) with HOST_LINT.

ruff's own findings are the failure message. Controls prove the scope is the board code and that
a module MicroPython lacks is caught. Host-side tests.
"""

import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUFF = os.path.join(ROOT, ".venv", "bin", "ruff")


# Host code: pyflakes only (unused or undefined names, bad format strings). The manifests are left
# out: MicroPython's manifest tool runs them with its own globals (include, package, require...).
HOST_LINT = ("check", "--isolated", "--select", "F", "--output-format", "concise",
             "--exclude", "firmware/**/*manifest.py,firmware/host_manifest.py", "tools", "tests", "firmware")


def ruff(*args):
    return subprocess.run([RUFF] + list(args), capture_output=True, text=True, timeout=120, cwd=ROOT,
                          stdin=subprocess.DEVNULL)


def test_board_code_is_lint_clean():
    done = ruff("check", "--output-format", "concise")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All checks passed!" in done.stdout


def test_the_lint_covers_the_board_code():
    listed = ruff("check", "--show-files").stdout
    files = {os.path.relpath(line.strip(), ROOT) for line in listed.splitlines() if line.strip().endswith(".py")}
    assert {"boot.py", "main.py", "lib/gateway/app.py", "lib/rbamp/device.py"} <= files, sorted(files)
    assert not [f for f in files if not (f.startswith("lib/") or f in ("boot.py", "main.py"))], sorted(files)


def test_a_module_micropython_lacks_is_reported(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from typing import List\n\nNAMES = []  # type: List[str]\n")
    done = ruff("check", "--config", os.path.join(ROOT, "ruff.toml"), "--output-format", "concise", str(probe))
    assert done.returncode == 1
    assert "TID251 `typing` is banned" in done.stdout, done.stdout


def test_host_code_has_no_pyflakes_findings():
    done = ruff(*HOST_LINT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All checks passed!" in done.stdout


def test_the_host_lint_reads_the_host_code():
    listed = ruff(*(HOST_LINT + ("--show-files",))).stdout
    files = {os.path.relpath(line.strip(), ROOT) for line in listed.splitlines() if line.strip().endswith(".py")}
    assert {"tools/rbamp_cli/cli.py", "tools/rbampsim/clock.py", "tests/test_lint.py"} <= files, sorted(files)
    assert not [f for f in files if f.startswith("firmware/") and f.endswith("manifest.py")], sorted(files)
