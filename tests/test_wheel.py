"""The pip package: a wheel built from this tree (offline) installs the driver and the ``rbamp``
command into a fresh virtual environment, and both work from outside the repository."""

import json
import os
import shutil
import subprocess
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("rbamp", "rbamp_cli", "rbampsim", "gateway")


def _run(argv, **kwargs):
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, check=False,
                            **kwargs)
    assert result.returncode == 0, (argv, result.stdout[-2000:], result.stderr[-2000:])
    return result


def _copy_sources(target):
    """What the build reads, without this checkout's build leftovers (the build writes beside them)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    os.makedirs(target)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), target)
    for name in ("lib", "tools"):
        shutil.copytree(os.path.join(ROOT, name), os.path.join(target, name), ignore=ignore)


def test_wheel_installs_driver_and_cli_into_a_fresh_venv(tmp_path):
    source = str(tmp_path / "source")
    wheels = str(tmp_path / "wheels")
    _copy_sources(source)
    _run([sys.executable, "-m", "pip", "wheel", source, "--no-deps", "--no-build-isolation", "--no-index",
          "-q", "-w", wheels])
    built = [name for name in os.listdir(wheels) if name.endswith(".whl")]
    assert len(built) == 1, built
    wheel = os.path.join(wheels, built[0])
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(archive.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert sorted(top_level) == sorted(PACKAGES)
    assert "rbamp = rbamp_cli.cli:main" in entry_points
    assert not [n for n in names if n.startswith(("tests/", "xrt/")) or "/tests/" in n]

    venv = str(tmp_path / "venv")
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = os.path.join(venv, "bin", "python")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel])

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    probe = ("import rbamp, rbamp_cli, rbampsim, gateway.store; print(rbamp.__file__); print(rbamp_cli.__file__); "
             "print(rbamp.__version__)")
    site = _run([python, "-c", probe], cwd=str(elsewhere), env=env).stdout.split()
    assert all(path.startswith(venv) for path in site[:2]) and site[2] == "0.1.0"

    rbamp = os.path.join(venv, "bin", "rbamp")
    help_text = _run([rbamp, "--help"], cwd=str(elsewhere), env=env).stdout
    assert "VARIANT@VERSION" in help_text and "provision" in help_text and "journal" in help_text
    reading = json.loads(_run([rbamp, "read", "--sim", "UI2@1.3", "--sim-clock", "virtual", "--json"],
                              cwd=str(elsewhere), env=env).stdout)
    assert reading["variant"] == "UI2" and reading["protocol"] == "1.3" and len(reading["channels"]) == 2
    assert 200 < reading["voltage"] < 260 and 49.9 < reading["frequency"] < 50.1
    constant = json.loads(_run([rbamp, "read", "--sim", "UI1@1.2", "--sim-clock", "virtual", "--load",
                                "constant:1500", "--json"], cwd=str(elsewhere), env=env).stdout)
    assert abs(constant["channels"][0]["power"] - 1500.0) < 0.01
    mistake = subprocess.run([rbamp, "read", "--sim", "UI2", "--sim-clock", "virtual", "--addr", "0x22"],
                             capture_output=True, text=True, timeout=60, cwd=str(elsewhere), env=env, check=False)
    assert mistake.returncode == 1 and mistake.stderr.startswith("rbamp: error: module 0x22: no device acknowledges")
    assert "Traceback" not in mistake.stderr
    example = os.path.join(ROOT, "config.example.json")
    assert "is valid" in _run([rbamp, "config", "validate", example], cwd=str(elsewhere), env=env).stdout
