"""The release workflow (.github/workflows/release.yml) and `make firmware MPY_DIR=...`
(tools/build_firmware.sh with a checkout of your own), which cannot run here (no ESP-IDF, no
network): the workflow is parsed as YAML and its steps' commands run under bash with stand-ins for
make, gh and ESP-IDF's export.sh that record what they were asked; build_firmware.sh runs the same
way against a MicroPython-shaped tree. The offline Pico W build: tests/test_firmware_build.py."""

import os
import re
import stat
import subprocess

import pytest
import yaml
from support_firmware import (
    BOARDS_DIR,
    ROOT,
    micropython_source,
    pinned_micropython_version,
)

WORKFLOW = os.path.join(ROOT, ".github", "workflows", "release.yml")
IMAGE_SUFFIX = {"RBAMP_ESP32": "bin", "RBAMP_PICO_W": "uf2"}


def workflow():
    with open(WORKFLOW) as f:
        return yaml.safe_load(f)


def job():
    return workflow()["jobs"]["firmware"]


def step(name_part):
    found = [s for s in job()["steps"] if name_part in s.get("name", "")]
    assert len(found) == 1, name_part
    return found[0]


def expand(text, values):
    """GitHub's ${{ expr }} for the plain dotted names the workflow uses."""
    def value(match):
        name = match.group(1).strip()
        if name not in values:
            raise AssertionError("the test does not know ${{ %s }}" % name)
        return values[name]

    return re.sub(r"\$\{\{(.*?)\}\}", value, text)


def stub(bin_dir, name, body):
    path = os.path.join(bin_dir, name)
    with open(path, "w") as f:
        f.write("#!/usr/bin/env bash\n" + body)
    os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)


def run_step(script, cwd, env_extra):
    env = dict(os.environ, **env_extra)
    env["PATH"] = env_extra["STUB_BIN"] + os.pathsep + os.environ["PATH"]
    return subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
                          check=False)


def test_runs_on_published_releases_and_by_hand():
    triggers = workflow().get("on", workflow().get(True))  # YAML 1.1 reads a bare `on` as true
    assert triggers["release"]["types"] == ["published"]
    assert "workflow_dispatch" in triggers
    assert workflow()["permissions"]["contents"] == "write"


def test_matrix_builds_every_board_folder():
    boards = sorted(name for name in os.listdir(BOARDS_DIR) if os.path.isdir(os.path.join(BOARDS_DIR, name)))
    matrix = job()["strategy"]["matrix"]["include"]
    assert sorted(entry["board"] for entry in matrix) == boards
    for entry in matrix:
        assert entry["image"] == IMAGE_SUFFIX[entry["board"]]


def test_micropython_is_checked_out_at_the_pinned_tag(tmp_path):
    pin = step("pinned MicroPython version")
    output = tmp_path / "github_output"
    out = subprocess.run(["bash", "-e", "-c", pin["run"]], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, GITHUB_OUTPUT=str(output)), check=False)
    assert out.returncode == 0, out.stderr
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    checkout = step("Check out MicroPython")
    assert checkout["uses"].startswith("actions/checkout@")
    assert checkout["with"]["repository"] == "micropython/micropython"
    ref = expand(checkout["with"]["ref"], {"steps.%s.outputs.%s" % (pin["id"], k): v for k, v in outputs.items()})
    assert ref == pinned_micropython_version() == "v1.25.0"


def test_esp_idf_is_the_version_micropython_documents():
    version = workflow()["env"]["ESP_IDF_VERSION"]
    with open(os.path.join(micropython_source(), "ports", "esp32", "README.md")) as f:
        readme = f.read()
    assert "git clone -b %s --recursive https://github.com/espressif/esp-idf.git" % version in readme
    install = step("Install ESP-IDF")
    assert install["if"] == "matrix.toolchain == 'esp-idf'"
    assert '--branch "$ESP_IDF_VERSION"' in install["run"] and "install.sh" in install["run"]
    arm = step("Arm GNU toolchain")
    assert arm["if"] == "matrix.toolchain == 'arm-none-eabi'"
    assert "gcc-arm-none-eabi" in arm["run"] and "libnewlib-arm-none-eabi" in arm["run"]


@pytest.mark.parametrize("entry", [e["board"] for e in workflow()["jobs"]["firmware"]["strategy"]["matrix"]["include"]])
def test_build_step_runs_make_firmware_in_the_toolchain_environment(entry, tmp_path):
    matrix = next(e for e in job()["strategy"]["matrix"]["include"] if e["board"] == entry)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    stub(str(bin_dir), "make", 'echo "make $* IDF=${IDF_EXPORTED:-no}" >> "%s"\n' % log)
    home = tmp_path / "home"
    (home / "esp-idf").mkdir(parents=True)
    (home / "esp-idf" / "export.sh").write_text("export IDF_EXPORTED=yes\n")
    workspace = tmp_path / "workspace"
    (workspace / "dist").mkdir(parents=True)
    script = expand(step("Build the image")["run"], {"matrix.%s" % k: v for k, v in matrix.items()})
    out = run_step(script, str(workspace), {"STUB_BIN": str(bin_dir), "HOME": str(home),
                                            "GITHUB_WORKSPACE": str(workspace)})
    assert out.returncode == 0, out.stderr
    idf = "yes" if matrix["toolchain"] == "esp-idf" else "no"
    assert log.read_text().splitlines() == [
        "make firmware BOARD=%s MPY_DIR=%s/micropython IDF=%s" % (entry, workspace, idf)]


def test_release_step_uploads_the_built_image_to_the_release(tmp_path):
    upload = step("Attach the image to the release")
    assert upload["if"] == "github.event_name == 'release'"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    stub(str(bin_dir), "gh", 'echo "gh $* token=$GH_TOKEN" >> "%s"\n' % log)
    for entry in job()["strategy"]["matrix"]["include"]:
        workspace = tmp_path / entry["board"]
        (workspace / "dist").mkdir(parents=True)
        image = "rbamp-gateway-%s-micropython-v1.25.0.%s" % (entry["board"], entry["image"])
        (workspace / "dist" / image).write_text("image")
        values = {"matrix.%s" % k: v for k, v in entry.items()}
        values["github.event.release.tag_name"] = "v0.1.0"
        values["github.token"] = "t0ken"
        env = {k: expand(v, values) for k, v in upload["env"].items()}
        out = run_step(expand(upload["run"], values), str(workspace), dict(env, STUB_BIN=str(bin_dir)))
        assert out.returncode == 0, out.stderr
        assert log.read_text().splitlines()[-1] == "gh release upload v0.1.0 dist/%s --clobber token=t0ken" % image
    artifact = step("Keep the image as an artifact")
    assert artifact["uses"].startswith("actions/upload-artifact@")


def test_readme_names_the_images_and_artifacts_the_workflow_makes():
    """README's "Install on a board" tells where an image comes from: the names it gives are those
    `make firmware` writes and the release step uploads, and the manual run's artifact names."""
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    assert "<owner>" not in readme and "<repo>" not in readme
    artifact = step("Keep the image as an artifact")
    for entry in job()["strategy"]["matrix"]["include"]:
        image = "rbamp-gateway-%s-micropython-%s.%s" % (entry["board"], pinned_micropython_version(),
                                                       IMAGE_SUFFIX[entry["board"]])
        assert entry["image"] == IMAGE_SUFFIX[entry["board"]]
        assert "`%s`" % image in readme, image
        name = expand(artifact["with"]["name"], {"matrix.%s" % k: v for k, v in entry.items()})
        assert "`%s`" % name in readme, name
    assert "make firmware BOARD=RBAMP_PICO_W" in readme and "make firmware BOARD=RBAMP_ESP32 MPY_DIR=" in readme


# ---------------------------------------------------------------------- make firmware

def fake_micropython(tmp_path, version=(1, 25, 0)):
    tree = tmp_path / "micropython"
    (tree / "py").mkdir(parents=True)
    (tree / "py" / "mpconfig.h").write_text(
        "#define MICROPY_VERSION_MAJOR %d\n#define MICROPY_VERSION_MINOR %d\n#define MICROPY_VERSION_MICRO %d\n" % version)
    return tree


def build_firmware(args, tmp_path, tools=("idf.py", "arm-none-eabi-gcc")):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "make.log"
    # make: records its arguments; a port build leaves the image where the port's Makefile does
    stub(str(bin_dir), "make", """echo "$*" >> "%s"
dir=$2; shift 2
for arg in "$@"; do case $arg in BOARD_DIR=*) board=$(basename "${arg#BOARD_DIR=}");; submodules) exit 0;; esac; done
case $dir in
  */ports/esp32) mkdir -p "$dir/build-$board" && echo esp32 > "$dir/build-$board/firmware.bin";;
  */ports/rp2) mkdir -p "$dir/build-$board" && echo rp2 > "$dir/build-$board/firmware.uf2";;
esac
""" % log)
    for tool in tools:
        stub(str(bin_dir), tool, "exit 0\n")
    env = dict(os.environ, PATH=str(bin_dir) + os.pathsep + "/usr/bin:/bin", DIST_DIR=str(tmp_path / "dist"))
    out = subprocess.run([os.path.join(ROOT, "tools", "build_firmware.sh")] + args, capture_output=True, text=True,
                         env=env, timeout=60, check=False)
    calls = log.read_text().splitlines() if log.exists() else []
    return out, calls


@pytest.mark.parametrize("board,port", [("RBAMP_ESP32", "esp32"), ("RBAMP_PICO_W", "rp2")])
def test_make_firmware_runs_the_port_build_for_our_board_and_collects_the_image(board, port, tmp_path):
    tree = fake_micropython(tmp_path)
    out, calls = build_firmware([board, str(tree)], tmp_path)
    assert out.returncode == 0, out.stderr
    board_dir = os.path.join(BOARDS_DIR, board)
    assert calls[0].startswith("-C %s/mpy-cross" % tree)
    assert calls[1:] == ["-C %s/ports/%s BOARD_DIR=%s submodules" % (tree, port, board_dir),
                         "-C %s/ports/%s BOARD_DIR=%s -j%d" % (tree, port, board_dir, len(os.sched_getaffinity(0)))]
    image = out.stdout.split()[-1]
    assert image == str(tmp_path / "dist" / ("rbamp-gateway-%s-micropython-v1.25.0.%s" % (board, IMAGE_SUFFIX[board])))
    with open(image) as f:
        assert f.read().strip() == port


@pytest.mark.parametrize("args,message", [
    ([], "BOARD is not set"),
    (["RBAMP_NOPE", "x"], "no board 'RBAMP_NOPE'"),
    (["RBAMP_ESP32"], "MPY_DIR is not set"),
    (["RBAMP_ESP32", "/nonexistent"], "not a MicroPython source tree"),
])
def test_make_firmware_refuses_bad_arguments_in_one_line(args, message, tmp_path):
    out, calls = build_firmware(args, tmp_path)
    assert out.returncode == 2 and calls == []
    assert out.stderr.count("\n") == 1 and message in out.stderr, out.stderr


def test_make_firmware_refuses_another_micropython_version(tmp_path):
    tree = fake_micropython(tmp_path, (1, 24, 1))
    out, calls = build_firmware(["RBAMP_PICO_W", str(tree)], tmp_path)
    assert out.returncode == 2 and calls == []
    assert "is MicroPython v1.24.1; the boards are made for v1.25.0" in out.stderr


def test_make_firmware_names_the_missing_toolchain(tmp_path):
    tree = fake_micropython(tmp_path)
    out, calls = build_firmware(["RBAMP_ESP32", str(tree)], tmp_path, tools=())
    assert out.returncode == 2 and calls == [] and "idf.py is not on PATH" in out.stderr


def test_make_firmware_accepts_the_real_pinned_source_tree(tmp_path):
    # the ESP32: the Arm toolchain may be installed here (the Pico W image is built offline), ESP-IDF never is
    out, calls = build_firmware(["RBAMP_ESP32", micropython_source()], tmp_path, tools=())
    assert out.returncode == 2 and calls == [] and "idf.py is not on PATH" in out.stderr  # past the version check
