"""The manifests evaluated by MicroPython's own manifest tool (tools/manifestfile.py of the 1.25
source), as the port builds do: what each board image freezes, that every named file exists and
compiles for the board's architecture, and that the driver's manifest stands on its own. Also
what keeps lib/ board code: nothing under it imports the PC tools, and the PC's profile
(tools/hostboard.py) is found by gateway.boards.detect() only off the boards.

The Debian source carries only part of micropython-lib, so require() resolves what it can and
records every name asked for; the names themselves are checked. The umqtt.simple a board image
freezes is resolved in the offline MicroPython sources the Pico W build uses (../shared/vendor)
and checked against firmware/umqtt-simple.sha256, as is the copy the unix build freezes. Every
image and the unix build freeze microdot from the wheel pinned in firmware/microdot.sha256, byte
for byte, and the .mpy builds carry it precompiled."""

import ast
import hashlib
import os
import subprocess
import sys
import tarfile
import zipfile

import build_mpy  # tools/ is on the test path (pyproject.toml)
import pytest
from support_firmware import (
    ESP32_BOARD,
    PICO_W_BOARD,
    ROOT,
    VENDOR_DIR,
    load_module,
    micropython_source,
    pinned_micropython_version,
)

BOARDS = {"RBAMP_ESP32": (ESP32_BOARD, "esp32", "xtensawin"), "RBAMP_PICO_W": (PICO_W_BOARD, "rp2", "armv6m")}
LIB = os.path.join(ROOT, "lib")
TOOLS = os.path.join(ROOT, "tools")
UMQTT_PIN = os.path.join(ROOT, "firmware", "umqtt-simple.sha256")
UMQTT_COPY = os.path.join(ROOT, ".cache", "umqtt", "umqtt", "simple.py")
MICRODOT_PIN = os.path.join(ROOT, "firmware", "microdot.sha256")
WEBLIB = os.path.join(ROOT, ".cache", "weblib")
# What tools/fetch_microdot.sh takes out of the wheel: the modules the gateway's web server imports.
MICRODOT_FROZEN = {"microdot/__init__.py", "microdot/microdot.py", "microdot/helpers.py", "microdot/sse.py"}
# Modules only a platform provides, which lib/ may look up where it knows it runs there: the PC's
# profile (tools/hostboard.py), which gateway.boards.detect() imports off the boards, as it imports
# board_layout (frozen into our Pico W image only) on the Pico W.
PLATFORM_PROVIDED = {"hostboard": "lib/gateway/boards.py"}


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


def umqtt_pin():
    """(sha256, path inside the MicroPython tree) of the umqtt/simple.py the images freeze."""
    with open(UMQTT_PIN) as f:
        sha256, member = f.read().split()
    return sha256, member


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def pinned_microdot():
    """{module path: bytes} of every microdot module in the wheel firmware/microdot.sha256 pins:
    the copy `make weblib` keeps beside the extracted modules, checked against the pin here."""
    with open(MICRODOT_PIN) as f:
        sha256, wheel = f.read().split()
    path = os.path.join(WEBLIB, wheel)
    assert os.path.isfile(path), "run `make weblib`: %s is missing" % path
    assert sha256_of(path) == sha256, "%s is not the wheel firmware/microdot.sha256 pins" % path
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()
                if name.startswith("microdot/") and name.endswith(".py")}


def assert_frozen_microdot_is_the_pinned_one(files):
    frozen = {f.target_path: f for f in files if f.target_path.startswith("microdot/")}
    assert set(frozen) == MICRODOT_FROZEN, sorted(frozen)
    wheel = pinned_microdot()
    for target, f in frozen.items():
        with open(f.full_path, "rb") as source:
            assert source.read() == wheel[target], "%s differs from the pinned wheel's %s" % (f.full_path, target)
        assert f.opt == 3, target


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
    assert not any(t.endswith("manifest.py") for t in frozen)
    assert all(f.opt == 3 for f in frozen.values())
    assert not [f for f in files if f.full_path.startswith(TOOLS + os.sep) or
                f.full_path.startswith(os.path.join(ROOT, "tests") + os.sep)]
    targets = [f.target_path for f in files]
    assert not [t for t in targets if t.split("/")[0] in ("hostboard.py", "rbampsim")], targets
    assert len(targets) == len(set(targets)), "a module frozen twice"
    assert "umqtt.simple" in requested and "rbamp" in requested
    assert_frozen_microdot_is_the_pinned_one(files)


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


def test_host_manifest_freezes_the_board_code_the_pc_profile_simulator_and_pinned_umqtt():
    files, requested = evaluate(os.path.join(ROOT, "firmware", "host_manifest.py"), "unix")
    targets = {f.target_path: f.full_path for f in files}
    assert set(ours(files)) == expected_targets()  # lib/ as the boards get it, nothing more
    assert targets["hostboard.py"] == os.path.join(TOOLS, "hostboard.py")  # `import hostboard`, as on a PC
    assert targets["umqtt/simple.py"] == UMQTT_COPY
    assert sha256_of(UMQTT_COPY) == umqtt_pin()[0], "run `make umqtt`: %s is not the pinned file" % UMQTT_COPY
    assert "rbampsim/module.py" in targets and "asyncio/core.py" in targets
    assert_frozen_microdot_is_the_pinned_one(files)
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
        expected = {t[:-3] + ".mpy" for t in expected_targets() | MICRODOT_FROZEN} | {"boot.mpy", "main.mpy"}
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
    assert sorted(os.listdir(bundle / "lib")) == ["gateway", "microdot", "rbamp"]
    assert {"microdot/" + n[:-4] + ".py" for n in os.listdir(bundle / "lib" / "microdot")} == MICRODOT_FROZEN
    interpreter = os.environ.get("XRT_MPY64") or os.path.join(ROOT, ".venv", "bin", "micropython")
    paths = ".frozen:%s:%s" % (bundle / "lib", os.path.join(ROOT, ".cache", "umqtt"))  # no .cache/weblib
    run = subprocess.run([interpreter, "-c", "import gateway.app, rbamp, microdot.sse, microdot.microdot\n"
                          "print(gateway.app.__file__, microdot.microdot.__file__, microdot.sse.__file__)"],
                         capture_output=True, text=True, cwd=str(tmp_path), timeout=30, check=False,
                         env=dict(os.environ, MICROPYPATH=paths))
    assert run.returncode == 0, run.stderr
    app_file, microdot_file, sse_file = run.stdout.split()
    assert app_file.endswith("gateway/app.mpy")
    assert microdot_file == str(bundle / "lib" / "microdot" / "microdot.mpy") and sse_file.endswith("microdot/sse.mpy")


def test_every_microdot_module_the_board_code_imports_is_frozen():
    """lib/ may only import the microdot modules the images freeze (microdot.session, say, would
    import on the PC, where the whole wheel is not on the path either, but never on a board)."""
    wanted = set()
    for folder, dirs, names in os.walk(LIB):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in names:
            if not name.endswith(".py"):
                continue
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                modules = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                           [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
                for module in modules:
                    if module.split(".")[0] == "microdot":
                        wanted.add((os.path.relpath(os.path.join(folder, name), ROOT), module))
    missing = [(rel, module) for rel, module in sorted(wanted)
               if module.replace(".", "/") + ".py" not in MICRODOT_FROZEN
               and module.replace(".", "/") + "/__init__.py" not in MICRODOT_FROZEN]
    assert missing == [], "imported by lib/ but not frozen (tools/fetch_microdot.sh, manifest.py): %s" % missing


def test_a_manifest_without_the_fetched_microdot_says_make_weblib(tmp_path):
    tool = manifest_tool()
    source = micropython_source()
    m = tool.ManifestFile(tool.MODE_FREEZE, {"MPY_DIR": source, "MPY_LIB_DIR": os.path.join(source, "lib", "micropython-lib"),
                                             "PORT_DIR": os.path.join(source, "ports", "unix"), "BOARD_DIR": None})
    with pytest.raises(tool.ManifestFileError, match="microdot/__init__.py is missing: run `make weblib`"):
        m.execute('include(%r, port_manifest="$(MPY_DIR)/extmod/asyncio", umqtt_dir=".cache/umqtt", microdot_dir=%r)'
                  % (os.path.join(ROOT, "manifest.py"), str(tmp_path)))


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


# ---------------------------------------------------------------------- umqtt.simple as the images freeze it

@pytest.fixture(scope="module")
def vendor_tree(tmp_path_factory):
    """The parts of the offline MicroPython sources (../shared/vendor, the tree the Pico W build
    unpacks) that its manifests read, unpacked into a temporary folder."""
    archive = os.path.join(VENDOR_DIR, "micropython-%s-rp2-src.tar.xz" % pinned_micropython_version())
    if not os.path.isfile(archive):
        message = "no offline MicroPython sources: %s" % archive
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    top = "micropython-%s/" % pinned_micropython_version()
    wanted = tuple(top + part for part in ("tools/", "extmod/", "drivers/", "ports/rp2/", "lib/micropython-lib/"))
    target = tmp_path_factory.mktemp("vendor")
    with tarfile.open(archive) as tar:
        tar.extractall(target, members=[m for m in tar if m.name.startswith(wanted)], filter="data")
    return str(target / top)


def test_the_pico_w_image_freezes_the_pinned_umqtt_simple(vendor_tree):
    """require("umqtt.simple") (manifest.py), resolved by the vendor tree's own manifest tool in the
    micropython-lib v1.25.0 pins, as the port build resolves it: the file the tests import
    (tests/test_umqtt_pin.py) must be this one, byte for byte."""
    tool = load_module(os.path.join(vendor_tree, "tools", "manifestfile.py"), "vendor_manifestfile")
    manifest = tool.ManifestFile(tool.MODE_FREEZE, {
        "MPY_DIR": vendor_tree, "MPY_LIB_DIR": os.path.join(vendor_tree, "lib", "micropython-lib"),
        "PORT_DIR": os.path.join(vendor_tree, "ports", "rp2"), "BOARD_DIR": PICO_W_BOARD})
    manifest.execute(os.path.join(PICO_W_BOARD, "manifest.py"))
    frozen = {f.target_path: f.full_path for f in manifest.files()}
    sha256, member = umqtt_pin()
    assert frozen["umqtt/simple.py"] == os.path.join(vendor_tree, member)
    assert sha256_of(frozen["umqtt/simple.py"]) == sha256, (
        "the umqtt.simple the image freezes changed: check gateway's MQTT code against it, then "
        "update firmware/umqtt-simple.sha256")
    assert sha256_of(UMQTT_COPY) == sha256, "run `make umqtt`: the tests' copy is not the frozen file"
    assert_frozen_microdot_is_the_pinned_one(manifest.files())  # as the offline image build resolves it


# ---------------------------------------------------------------------- lib/ and the PC tools

def tools_module_names():
    """The top-level names tools/ provides on the PC's path: its modules and its folders."""
    return {name[:-3] if name.endswith(".py") else name for name in os.listdir(TOOLS)
            if (name.endswith(".py") or os.path.isdir(os.path.join(TOOLS, name))) and not name.startswith((".", "__"))}


def imported_names(path):
    """(top-level module name, line) of every import in a file: statements anywhere (inside
    functions too) and __import__() of a literal name."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0], node.lineno
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "__import__"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            yield node.args[0].value.split(".")[0], node.lineno


def tools_imports(top):
    """(file relative to ROOT, line, name) of every import of a tools/ module in the .py files under top."""
    names = tools_module_names()
    found = []
    for folder, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.endswith(".egg-info"))
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                found += [(os.path.relpath(path, ROOT), line, module) for module, line in imported_names(path)
                          if module in names]
    return found


def test_nothing_under_lib_imports_the_pc_tools():
    found = tools_imports(LIB)
    platform = [(rel, name) for rel, _, name in found if PLATFORM_PROVIDED.get(name) == rel]
    assert [item for item in found if PLATFORM_PROVIDED.get(item[2]) != item[0]] == [], (
        "lib/ goes on the boards, tools/ does not: lib/ must not import it")
    assert sorted(set(platform)) == sorted((rel, name) for name, rel in PLATFORM_PROVIDED.items())


def test_the_lib_scan_finds_an_import_of_the_tools_wherever_it_is(tmp_path):
    (tmp_path / "probe.py").write_text("import os\n\n\ndef run():\n    from rbampsim.remote import open_bus\n"
                                       "    return __import__('norflash'), open_bus\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deeper.py").write_text("import gateway_rig as rig, json\n")
    found = {(os.path.basename(rel), line, name) for rel, line, name in tools_imports(str(tmp_path))}
    assert found == {("probe.py", 5, "rbampsim"), ("probe.py", 6, "norflash"), ("deeper.py", 1, "gateway_rig")}


def detect_on(platform, *path):
    """gateway.boards.detect() in a fresh CPython with sys.platform set and only ``path``."""
    code = ("import sys\nsys.platform = %r\nfrom gateway.boards import detect\nboard = detect()\n"
            "print(type(board).__module__, type(board).__name__, sorted(m for m in sys.modules if m == 'hostboard'))"
            % platform)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          stdin=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=os.pathsep.join(path)))


def test_detect_finds_the_pc_profile_in_tools_and_only_off_the_boards(tmp_path):
    done = detect_on("linux", LIB, TOOLS)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["hostboard", "HostBoard", "['hostboard']"]
    # a board never looks for it, even where a module of that name would import
    (tmp_path / "hostboard.py").write_text("raise RuntimeError('a board imported the PC profile')\n")
    for platform, profile in (("rp2", "Rp2Board"), ("esp32", "Esp32Board")):
        done = detect_on(platform, LIB, str(tmp_path))
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["gateway.boards", profile, "[]"]


def test_detect_without_the_pc_tools_says_what_is_missing():
    done = detect_on("linux", LIB)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: no board profile for platform 'linux'"), done.stderr
    assert "tools/hostboard.py" in last and "put the repository's tools/ on it" in last, last
