"""Host checks of the driver's packaging files (they describe the source tree, not behaviour)."""

import ast
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "lib", "rbamp")


def _modules():
    return sorted(f for f in os.listdir(PKG) if f.endswith(".py") and f != "manifest.py")


def test_mip_package_json_lists_exactly_the_driver_modules():
    with open(os.path.join(PKG, "package.json")) as f:
        pkg = json.load(f)
    targets = sorted(dest for dest, _ in pkg["urls"])
    assert targets == ["rbamp/" + name for name in _modules()]
    for dest, src in pkg["urls"]:
        assert os.path.exists(os.path.join(PKG, src)), src


def test_micropython_manifest_freezes_the_same_modules():
    tree = ast.parse(open(os.path.join(PKG, "manifest.py")).read())
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "package"]
    assert len(calls) == 1
    files = [kw.value for kw in calls[0].keywords if kw.arg == "files"][0]
    assert sorted(ast.literal_eval(files)) == _modules()


def test_pip_metadata_and_import_from_the_installed_package():
    out = subprocess.run([sys.executable, "-c", "import rbamp, sys; print(rbamp.__file__, rbamp.__version__)"],
                         capture_output=True, text=True, cwd="/", check=True)
    path, version = out.stdout.split()
    assert path.startswith(PKG) and version == "0.1.0"
