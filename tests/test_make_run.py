"""The README's first command: `make run` (tools/run_host.py) with its embedded broker, headless."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_make_run_shows_what_a_subscriber_receives_and_stops_cleanly(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "run_host.py"), "--duration", "16",
                          "--data", str(tmp_path / "run")], capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    screens = out.stdout
    assert "availability           online" in screens
    assert '"status": "ok"' in screens and "totals" in screens, screens[-3000:]
    assert "INFO stopping" in screens and "gateway exited with 0" in screens
    assert os.path.exists(tmp_path / "run" / "energy.img")
