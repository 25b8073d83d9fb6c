"""pytest plugin: runs every cross-runtime test body under cpython, mpy64 and mpy32.

A test module opts in with a module-level ``RUNTIMES = (...)`` tuple (read with ``ast``, the module
is not imported to find it). Each ``test_*`` function becomes one item per runtime, e.g.
``test_x[mpy32]``. MicroPython items of one module run in one interpreter process (started on the
first such item), which writes a JSON line per finished test; missing lines (a crash) are failures.

Interpreters: ``XRT_MPY64`` and ``XRT_MPY32`` name the binaries (the Makefile sets them). A missing
interpreter skips its items loudly, except under ``CI=true`` where it is an error.

A module that also sets ``NEEDS_BROKER = True`` gets an MQTT broker of its own while its tests run,
announced through ``XRT_MQTT_HOST``/``XRT_MQTT_PORT`` (see ``xrt.broker``, which also lets a test
body stop, start, pause and resume it).
"""

import ast
import json
import os
import subprocess
import sys
import tempfile

import pytest

ALL_RUNTIMES = ("cpython", "mpy64", "mpy32")
MODULE_TIMEOUT_S = int(os.environ.get("XRT_MODULE_TIMEOUT", "1500"))

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _search_path(test_dir):
    extra = os.environ.get("XRT_EXTRA_PATH", "")
    paths = [test_dir, os.path.join(_REPO, "lib"), os.path.join(_REPO, "tools")]
    paths += [p for p in extra.split(os.pathsep) if p]
    return paths


def interpreter_for(runtime):
    env_name = "XRT_" + runtime.upper()
    path = os.environ.get(env_name)
    if path:
        return path if os.access(path, os.X_OK) else None
    defaults = {
        "mpy64": os.path.join(os.path.dirname(sys.executable), "micropython"),
        "mpy32": os.path.join(_REPO, ".cache", "mpy32", "micropython-32-plain"),
    }
    path = defaults.get(runtime)
    return path if path and os.access(path, os.X_OK) else None


def _declared_runtimes(path):
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except SyntaxError:
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "RUNTIMES" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            unknown = [r for r in value if r not in ALL_RUNTIMES]
            if unknown:
                raise pytest.UsageError("%s: unknown runtimes %s" % (path, unknown))
            names = [
                n.name
                for n in tree.body
                if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")
            ]
            return tuple(value), names
    return None


def _declares_true(path, name):
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except SyntaxError:
        return False
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return isinstance(node.value, ast.Constant) and node.value.value is True
    return False


def pytest_collect_file(file_path, parent):
    if file_path.suffix != ".py" or not file_path.name.startswith("test_"):
        return None
    declared = _declared_runtimes(file_path)
    if declared is None:
        return None
    return CrossRuntimeModule.from_parent(parent, path=file_path, declared=declared)


def pytest_pycollect_makemodule(module_path, parent):
    # Cross-runtime modules are collected by CrossRuntimeModule only, never imported as pytest modules.
    if _declared_runtimes(module_path) is not None:
        return _Ignored.from_parent(parent, path=module_path)
    return None


class _Ignored(pytest.File):
    def collect(self):
        return []


class CrossRuntimeModule(pytest.File):
    def __init__(self, *, declared, **kwargs):
        super().__init__(**kwargs)
        self.runtimes, self.test_names = declared
        self._mpy_results = {}
        self.needs_broker = _declares_true(self.path, "NEEDS_BROKER")
        self._broker = None

    def setup(self):
        if not self.needs_broker:
            return
        from xrt.broker import ModuleBroker

        try:
            self._broker = ModuleBroker.start(self.tmp_dir("broker"))
        except RuntimeError as exc:
            if os.environ.get("CI") == "true":
                raise
            pytest.skip("no MQTT broker for %s: %s" % (self.module_name, exc))
        os.environ.update(self._broker.env)

    def teardown(self):
        if self._broker is not None:
            for key in self._broker.env:
                os.environ.pop(key, None)
            self._broker.close()
            self._broker = None

    def collect(self):
        for runtime in self.runtimes:
            for name in self.test_names:
                item = CrossRuntimeItem.from_parent(self, name="%s[%s]" % (name, runtime))
                item.test_name = name
                item.runtime = runtime
                yield item

    @property
    def module_name(self):
        return self.path.stem

    def tmp_dir(self, runtime):
        base = self.config._xrt_tmp_root
        path = os.path.join(base, "%s-%s" % (self.module_name, runtime))
        os.makedirs(path, exist_ok=True)
        return path

    def mpy_results(self, runtime):
        """Run this module's selected tests for runtime once; return {name: result}."""
        if runtime in self._mpy_results:
            return self._mpy_results[runtime]
        session_items = self.session.items
        names = [
            it.test_name
            for it in session_items
            if isinstance(it, CrossRuntimeItem) and it.parent is self and it.runtime == runtime
        ]
        binary = interpreter_for(runtime)
        tmp = self.tmp_dir(runtime)
        results_path = os.path.join(tmp, "results.jsonl")
        if os.path.exists(results_path):
            os.remove(results_path)
        env = dict(os.environ)
        env["MICROPYPATH"] = os.pathsep.join([".frozen"] + _search_path(str(self.path.parent)))
        env["XRT_RUNTIME"] = runtime
        env["XRT_TMPDIR"] = tmp
        cmd = [binary, "-m", "xrt.runner", self.module_name, results_path] + names
        try:
            proc = subprocess.run(
                cmd, env=env, capture_output=True, text=True, timeout=MODULE_TIMEOUT_S,
                cwd=tmp, stdin=subprocess.DEVNULL,
            )
            output = proc.stdout + proc.stderr
            exit_note = "interpreter exit code %d" % proc.returncode
        except subprocess.TimeoutExpired as exc:
            output = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            exit_note = "module timed out after %d s" % MODULE_TIMEOUT_S
        results = {}
        if os.path.exists(results_path):
            with open(results_path, encoding="utf-8") as fh:
                for line in fh:
                    line = line.strip()
                    if line:
                        record = json.loads(line)
                        results[record["name"]] = record
        results["__output__"] = output
        results["__exit__"] = exit_note
        self._mpy_results[runtime] = results
        return results


class CrossRuntimeFailure(Exception):
    pass


class CrossRuntimeItem(pytest.Item):
    test_name = ""
    runtime = ""

    def runtest(self):
        if self.runtime == "cpython":
            self._run_in_process()
            return
        if interpreter_for(self.runtime) is None:
            message = "%s interpreter not available (set XRT_%s or run `make test`)" % (
                self.runtime, self.runtime.upper())
            if os.environ.get("CI") == "true":
                raise CrossRuntimeFailure(message)
            pytest.skip(message)
        results = self.parent.mpy_results(self.runtime)
        record = results.get(self.test_name) or results.get("*")
        if record is None:
            raise CrossRuntimeFailure(
                "%s: no result for %s (%s)\n--- interpreter output ---\n%s"
                % (self.runtime, self.test_name, results["__exit__"], results["__output__"][-6000:])
            )
        status = record["status"]
        if status == "passed":
            return
        if status == "skipped":
            pytest.skip(record["detail"])
        raise CrossRuntimeFailure(
            "%s under %s:\n%s\n--- interpreter output ---\n%s"
            % (self.test_name, self.runtime, record["detail"], results["__output__"][-3000:])
        )

    def _run_in_process(self):
        import importlib

        import xrt

        test_dir = str(self.path.parent)
        for p in reversed(_search_path(test_dir)):
            if p not in sys.path:
                sys.path.insert(0, p)
        os.environ["XRT_RUNTIME"] = "cpython"
        os.environ["XRT_TMPDIR"] = self.parent.tmp_dir("cpython")
        module = importlib.import_module(self.parent.module_name)
        fn = getattr(module, self.test_name)
        try:
            fn()
        except xrt.Skip as exc:
            pytest.skip(str(exc))

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, CrossRuntimeFailure):
            return str(excinfo.value)
        # A body run in this process: show its own frames, not pytest's and pluggy's.
        import traceback

        frames = [frame for frame in traceback.extract_tb(excinfo.tb)
                  if "/_pytest/" not in frame.filename and "/pluggy/" not in frame.filename
                  and not frame.filename.endswith("pytest_plugin.py")]
        return "%s under cpython:\n%s%s" % (
            self.test_name, "".join(traceback.format_list(frames)),
            "".join(traceback.format_exception_only(excinfo.type, excinfo.value)))

    def reportinfo(self):
        return self.path, None, "%s::%s" % (self.path.name, self.name)


def pytest_configure(config):
    config._xrt_tmp_root = tempfile.mkdtemp(prefix="xrt-")
    config._xrt_counts = {}


def pytest_runtest_logreport(report):
    if report.when != "call" and not (report.when == "setup" and report.outcome != "passed"):
        return
    runtime = "host"
    name = report.nodeid
    if name.endswith("]"):
        tag = name[name.rfind("[") + 1:-1]
        if tag in ALL_RUNTIMES:
            runtime = tag
    counts = _COUNTS.setdefault(runtime, {"passed": 0, "failed": 0, "skipped": 0})
    counts[report.outcome] = counts.get(report.outcome, 0) + 1


_COUNTS = {}


def pytest_terminal_summary(terminalreporter):
    if not _COUNTS:
        return
    terminalreporter.section("tests per runtime")
    for runtime in ALL_RUNTIMES + ("host",):
        counts = _COUNTS.get(runtime)
        if counts is None:
            if runtime in ALL_RUNTIMES:
                terminalreporter.write_line("%-8s 0 tests ran" % runtime)
            continue
        terminalreporter.write_line(
            "%-8s %d passed, %d failed, %d skipped"
            % (runtime, counts["passed"], counts["failed"], counts["skipped"])
        )
    for runtime in ("mpy64", "mpy32"):
        if interpreter_for(runtime) is None:
            terminalreporter.write_line(
                "WARNING: %s interpreter missing: its tests did not run" % runtime, red=True, bold=True
            )
