"""`make run` refusing to run: a bad CONFIG (judged by the gateway's own parser), a BROKER without
a port or without a broker behind it, and a data folder another run holds. Each is one line on
stderr with exit status 1, no traceback, and nothing left running; a killed run's lock is taken
over by the next run."""

import json
import os
import signal

import pytest
from support_e2e import wait_until
from support_run_host import kill_marked, marked_processes, new_mark, run, start
from xrt.broker import free_port

from gateway.config import ConfigError, parse_config

GOOD = {"device_id": "refusal-gw", "mqtt": {"host": "127.0.0.1", "port": 1883},
        "modules": [{"address": 80, "label": "house"}], "ntp": {"enabled": False}}

BAD_CONFIGS = [
    # (file text, words of the gateway's message)
    ('{\n  "device_id": "refusal-gw",\n  "mqtt": {"host": "127.0.0.1", "port": 1883},\n}\n',
     "not valid JSON: trailing comma before '}' at line 4"),
    ('{"device_id": "refusal-gw", "mqtt": "127.0.0.1"}', "mqtt: must be an object"),
    # what a rewrite by CPython's json used to hide: a duplicate key, a missing mqtt.host
    ('{"device_id": "refusal-gw", "mqtt": {"host": "127.0.0.1"}, "device_id": "other"}',
     "device_id: appears twice"),
    ('{"device_id": "refusal-gw", "mqtt": {"port": 1883}}', "mqtt.host: required key missing"),
]


def _one_line_refusal(out):
    assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-2000:]
    assert "Traceback" not in out.stdout + out.stderr
    assert out.stdout == "", out.stdout
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("make run: "), out.stderr
    return lines[0]


@pytest.mark.parametrize("text, words", BAD_CONFIGS, ids=["trailing-comma", "mqtt-a-string", "duplicate-key",
                                                         "no-mqtt-host"])
def test_a_bad_config_is_the_gateways_own_message_and_nothing_runs(tmp_path, text, words):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as board:  # what a board with this file would log
        parse_config(text.encode(), "bad.json")
    mark = new_mark()
    try:
        out = run(["--config", str(path), "--data", str(tmp_path / "run")], mark)  # embedded broker
        line = _one_line_refusal(out)
        assert words in str(board.value)
        assert str(board.value) in line, line
        assert not marked_processes(mark)  # no broker, simulator or gateway was left running
        assert not (tmp_path / "run" / "config.json").exists()
    finally:
        kill_marked(mark)


def test_broker_without_a_port_is_refused_in_one_line(tmp_path):
    mark = new_mark()
    try:
        line = _one_line_refusal(run(["--broker", "127.0.0.1", "--data", str(tmp_path / "run")], mark))
        assert "BROKER=127.0.0.1 has no port" in line
        assert not marked_processes(mark)
    finally:
        kill_marked(mark)


def test_a_wrong_broker_port_is_one_line_and_leaves_no_process(tmp_path):
    port = free_port()  # nothing listens there
    mark = new_mark()
    try:
        line = _one_line_refusal(run(["--broker", "127.0.0.1:%d" % port, "--data", str(tmp_path / "run")], mark))
        assert "no MQTT broker at 127.0.0.1:%d" % port in line, line
        assert not marked_processes(mark)
        assert not (tmp_path / "run" / "gateway.pid").exists() and not (tmp_path / "run" / "sim_port").exists()
    finally:
        kill_marked(mark)


def test_two_runs_never_share_a_data_folder_and_a_killed_runs_lock_is_taken_over(tmp_path):
    """A second run on a folder in use names the run holding it; when that run is SIGKILLed its
    orphaned gateway still holds the folder (and is named); once that is gone too, the next run
    takes the lock over and runs."""
    data = tmp_path / "run"
    config = tmp_path / "config.json"
    config.write_text(json.dumps(GOOD))
    args = ["--config", str(config), "--data", str(data)]
    first_mark, second_mark = new_mark(), new_mark()
    first = start(args + ["--duration", "120"], first_mark, tmp_path / "first.out")
    try:
        wait_until(lambda: (data / "gateway.pid").exists(), 60, "the first run's gateway")
        gateway = int((data / "gateway.pid").read_text())

        line = _one_line_refusal(run(args, second_mark))
        assert "in use by make run (process %d)" % first.pid in line, line
        assert first.poll() is None and gateway in marked_processes(first_mark)  # untouched
        assert not marked_processes(second_mark)  # the second left nothing

        os.kill(first.pid, signal.SIGKILL)  # the supervisor only: its gateway is orphaned
        first.wait(10)
        line = _one_line_refusal(run(args, second_mark))
        assert "a gateway left running by a make run that is gone (process %d)" % gateway in line, line

        kill_marked(first_mark)  # the orphans: gateway, simulator, broker
        wait_until(lambda: not marked_processes(first_mark), 30, "the first run's processes gone")
        out = run(args + ["--duration", "6"], second_mark)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        assert "took over the lock of %s from process %d, which is gone" % (data, first.pid) in out.stdout
        assert "gateway exited with 0" in out.stdout
        assert not marked_processes(second_mark)
        assert (data / "run.lock").read_text() == ""  # a clean end leaves no owner to take over from
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)
        kill_marked(first_mark)
        kill_marked(second_mark)


def test_a_web_port_in_use_is_one_line_and_leaves_no_process(tmp_path):
    """The page's port held by another program (a listening socket here): refused before the
    broker, simulator or gateway start, naming the port and how to pick another."""
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        mark = new_mark()
        try:
            line = _one_line_refusal(run(["--web-port", str(port), "--data", str(tmp_path / "run")], mark))
            assert line.startswith("make run: WEB_PORT=%d: TCP port 127.0.0.1:%d is not free (" % (port, port)), line
            assert "give another, e.g. WEB_PORT=%d (nothing was started)" % (port + 1) in line, line
            assert not marked_processes(mark)
            assert not (tmp_path / "run" / "config.json").exists() and not (tmp_path / "run" / "gateway.pid").exists()
            assert (tmp_path / "run" / "run.lock").read_text() == ""  # the folder is free for the next run
        finally:
            kill_marked(mark)


def test_a_web_port_that_is_no_port_is_one_line(tmp_path):
    mark = new_mark()
    try:
        for text in ("web", "0", "65536"):
            line = _one_line_refusal(run(["--web-port", text, "--data", str(tmp_path / "run")], mark))
            assert line == "make run: WEB_PORT=%s is not a port number (1..65535)" % text, line
        assert not marked_processes(mark)
    finally:
        kill_marked(mark)


def test_setup_mode_with_its_dns_port_in_use_is_one_line_and_leaves_no_process(tmp_path):
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        mark = new_mark()
        try:
            line = _one_line_refusal(run(["--setup", "--dns-port", str(port), "--data", str(tmp_path / "run")], mark))
            assert line.startswith("make run: DNS_PORT=%d: UDP port 127.0.0.1:%d is not free (" % (port, port)), line
            assert not marked_processes(mark)
            assert not (tmp_path / "run" / "setup_button").exists()  # nothing was pressed either
        finally:
            kill_marked(mark)
