"""The manifests evaluated by MicroPython's own manifest tool (tools/manifestfile.py of the 1.25
source), as the port builds do: what each board image freezes, that every named file exists and
compiles for the board's architecture, and that the driver's manifest stands on its own.

The Debian source carries only part of micropython-lib, so require() resolves what it can and
records every name asked for; the names themselves are checked."""

import os
import subprocess
import sys

import build_mpy  # tools/ is on the test path (pyproject.toml)
import pytest
from support_firmware import (
    ESP32_BOARD,
    PICO_W_BOARD,
    ROOT,
    load_module,
    micropython_source,
)

BOARDS = {"RBAMP_ESP32": (ESP32_BOARD, "esp32", "xtensawin"), "RBAMP_PICO_W": (PICO_W_BOARD, "rp2", "armv6m")}
LIB = os.path.join(ROOT, "lib")


def manifest_tool():
    return load_module(os.path.join(micropython_source(), "tools", "manifestfile.py"), "manifestfile")


def evaluate(manifest, port, board_dir=None, mode="freeze"):
    """(files, required names) as the port build would see them."""
    tool = manifest_tool()
    source = micropython_source()
    requested = []

    class RecordingManifest(tool.ManifestFile):
        def require(self, name, version=None, pypi=None, library=None, **kwargs):
            requested.append(name)
            try:
                return tool.ManifestFile.require(self, name, version, pypi, library, **kwargs)
            except ValueError:
                if library is not None:
                    raise  # a library we registered ourselves must resolve
                return None  # not in the Debian source's partial micropython-lib

    modes = {"freeze": tool.MODE_FREEZE, "compile": tool.MODE_COMPILE}
    m = RecordingManifest(modes[mode], {"MPY_DIR": source, "MPY_LIB_DIR": os.path.join(source, "lib", "micropython-lib"),
                                        "PORT_DIR": os.path.join(source, "ports", port), "BOARD_DIR": board_dir})
    m.execute(manifest)
    return m.files(), requested


def ours(files):
    return {f.target_path: f for f in files if f.full_path.startswith(LIB + os.sep)}


def expected_targets():
    return {rel[len("lib/"):] for rel in build_mpy.board_modules()}


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_board_image_freezes_every_board_module_and_nothing_host_only(board):
    board_dir, port, _ = BOARDS[board]
    files, requested = evaluate(os.path.join(board_dir, "manifest.py"), port, board_dir)
    frozen = ours(files)
    assert set(frozen) == expected_targets()
    assert "gateway/hostboard.py" not in frozen and not any(t.endswith("manifest.py") for t in frozen)
    assert all(f.opt == 3 for f in frozen.values())
    assert not [f for f in files if f.full_path.startswith(os.path.join(ROOT, "tools")) or
                f.full_path.startswith(os.path.join(ROOT, "tests"))]
    targets = [f.target_path for f in files]
    assert len(targets) == len(set(targets)), "a module frozen twice"
    assert "umqtt.simple" in requested and "rbamp" in requested


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_board_image_freezes_the_main_py_that_starts_the_gateway(board):
    """MicroPython runs a frozen main.py in place of the filesystem's; firmware/frozen/main.py hands
    over to a main.py on the filesystem itself (tests/test_firmware_build.py runs it). boot.py is
    left to the board's filesystem."""
    board_dir, port, _ = BOARDS[board]
    files, _ = evaluate(os.path.join(board_dir, "manifest.py"), port, board_dir)
    by_target = {f.target_path: f for f in files}
    assert by_target["main.py"].full_path == os.path.join(ROOT, "firmware", "frozen", "main.py")
    assert by_target["main.py"].opt == 3
    assert "boot.py" not in by_target


def test_every_board_module_is_listed_in_the_manifest_or_declared_host_only():
    on_disk = {os.path.relpath(os.path.join(dirpath, name), ROOT).replace(os.sep, "/")
               for package in build_mpy.PACKAGES
               for dirpath, _, names in os.walk(os.path.join(LIB, package))
               for name in names if name.endswith(".py") and name != "manifest.py"}
    assert on_disk == set(build_mpy.board_modules()) | set(build_mpy.HOST_ONLY)


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_every_file_a_board_image_names_exists_and_compiles_for_its_arch(board, tmp_path):
    board_dir, port, arch = BOARDS[board]
    files, _ = evaluate(os.path.join(board_dir, "manifest.py"), port, board_dir)
    assert len(files) > len(expected_targets())  # the port's own modules come along
    for n, f in enumerate(files):
        assert os.path.isfile(f.full_path), f.full_path
        build_mpy.compile_file(f.full_path, str(tmp_path / ("%d.mpy" % n)), arch=arch, source_name=f.target_path)


def test_esp32_image_keeps_the_stock_image():
    source = micropython_source()
    stock, stock_requested = evaluate(os.path.join(source, "ports", "esp32", "boards", "manifest.py"), "esp32")
    files, requested = evaluate(os.path.join(ESP32_BOARD, "manifest.py"), "esp32", ESP32_BOARD)
    assert {(f.full_path, f.target_path) for f in stock} <= {(f.full_path, f.target_path) for f in files}
    assert set(stock_requested) <= set(requested)


def test_pico_w_image_is_rpi_pico_w_with_our_boot_and_layout():
    source = micropython_source()
    stock_board = os.path.join(source, "ports", "rp2", "boards", "RPI_PICO_W")
    stock, stock_requested = evaluate(os.path.join(stock_board, "manifest.py"), "rp2", stock_board)
    files, requested = evaluate(os.path.join(PICO_W_BOARD, "manifest.py"), "rp2", PICO_W_BOARD)
    by_target = {f.target_path: f.full_path for f in files}
    for f in stock:
        if f.target_path == "_boot.py":
            continue
        assert by_target.get(f.target_path) == f.full_path, f.target_path
    assert by_target["_boot.py"] == os.path.join(PICO_W_BOARD, "_boot.py")
    assert by_target["board_layout.py"] == os.path.join(PICO_W_BOARD, "board_layout.py")
    assert set(stock_requested) <= set(requested)


def test_host_manifest_freezes_the_host_profile_simulator_and_fetched_umqtt():
    files, requested = evaluate(os.path.join(ROOT, "firmware", "host_manifest.py"), "unix")
    targets = {f.target_path: f.full_path for f in files}
    assert set(ours(files)) == expected_targets() | {"gateway/hostboard.py"}
    assert targets["umqtt/simple.py"] == os.path.join(ROOT, ".cache", "umqtt", "umqtt", "simple.py")
    assert "rbampsim/module.py" in targets and "asyncio/core.py" in targets
    assert "umqtt.simple" not in requested  # the unix build has no micropython-lib to take it from
    assert "main.py" not in targets  # the unix port runs the script it is given


def test_driver_manifest_stands_alone_with_the_package_version():
    import tomllib

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        version = tomllib.load(f)["project"]["version"]
    # compile mode is what packaging tools use: metadata() must come first there
    files, requested = evaluate(os.path.join(LIB, "rbamp", "manifest.py"), "unix", mode="compile")
    assert requested == []
    assert {f.target_path for f in files} == {t for t in expected_targets() if t.startswith("rbamp/")}
    metadata = files[0].metadata
    assert metadata.version == version and "rbAmp" in metadata.description


def test_mpy_cross_rejects_cpython_only_syntax(tmp_path):
    """The compile step is a real syntax gate: MicroPython lacks `match` and rejects code that
    CPython 3.11 accepts."""
    source = tmp_path / "cpython_only.py"
    source.write_text("def kind(x):\n    match x:\n        case 1:\n            return 'one'\n")
    compile(source.read_text(), str(source), "exec")  # fine for CPython
    with pytest.raises(build_mpy.CompileError, match="cpython_only.py"):
        build_mpy.compile_file(str(source), str(tmp_path / "out.mpy"), arch="armv6m")


def test_make_mpy_compiles_every_board_file_for_both_boards(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "build_mpy.py"), "mpy", str(tmp_path / "mpy")],
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    for arch in build_mpy.ARCHES:
        built = {os.path.relpath(os.path.join(d, n), tmp_path / "mpy" / arch).replace(os.sep, "/")
                 for d, _, names in os.walk(tmp_path / "mpy" / arch) for n in names}
        expected = {t[:-3] + ".mpy" for t in expected_targets()} | {"boot.mpy", "main.mpy"}
        assert built == expected, arch
        with open(tmp_path / "mpy" / arch / "gateway" / "app.mpy", "rb") as f:
            header = f.read(4)
        assert header[:2] == b"M\x06"  # .mpy version 6: what MicroPython 1.25 loads


def test_make_mpy_bundle_imports_on_micropython_without_sources(tmp_path):
    bundle = tmp_path / "bundle"
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "build_mpy.py"), "bundle", str(bundle)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    assert sorted(os.listdir(bundle)) == ["boot.py", "lib", "main.py"]
    assert not [n for d, _, names in os.walk(bundle / "lib") for n in names if not n.endswith(".mpy")]
    interpreter = os.environ.get("XRT_MPY64") or os.path.join(ROOT, ".venv", "bin", "micropython")
    paths = ".frozen:%s:%s" % (bundle / "lib", os.path.join(ROOT, ".cache", "umqtt"))
    run = subprocess.run([interpreter, "-c", "import gateway.app, rbamp; print(gateway.app.__file__)"],
                         capture_output=True, text=True, cwd=str(tmp_path), timeout=30, check=False,
                         env=dict(os.environ, MICROPYPATH=paths))
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().endswith("gateway/app.mpy")


def test_build_mpy_reports_a_compile_error_in_one_line(tmp_path, monkeypatch, capsys):
    broken = tmp_path / "lib" / "gateway"
    broken.mkdir(parents=True)
    (broken / "bad.py").write_text("x = (1,\n")
    monkeypatch.setattr(build_mpy, "ROOT", str(tmp_path))
    monkeypatch.setattr(build_mpy, "ENTRY_SCRIPTS", ())
    assert build_mpy.main(["mpy", str(tmp_path / "out")]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "bad.py" in lines[0] and "SyntaxError" in lines[0], lines
    assert build_mpy.main(["nonsense"]) == 2
