"""Host tests of ``rbamp reset-totals`` against a real broker (mosquitto, amqtt without it): the
retained totals are gone and the journal is blank afterwards; a wrong confirmation, an online
gateway or something that is not a journal change nothing. paho-mqtt is the independent client."""

import io
import json
import threading

import pytest
from gateway.flashdev import BlockFilesDevice, FileBlockDevice
from gateway.store import REASON_GROWTH, EnergyStore
from support_cli import assert_one_line_error, cli
from xrt import broker as xbroker

TOTALS = {"0x50": {"import_wh": [12.5, 3.25], "export_wh": [0.0, 7.75]}}
COUNTERS = [12500, 0, 3250, 7750]


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = xbroker.Broker(str(tmp_path_factory.mktemp("broker")))
    b.start()
    yield b
    b.stop()


class Paho:
    """A plain paho client: publishes retained messages and reads what the broker keeps."""

    def __init__(self, port):
        import paho.mqtt.client as mqtt

        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-reset-%d" % id(self))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def retain(self, topic, payload):
        self.client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)

    def retained(self, topic):
        """What a new subscriber gets retained on ``topic`` (None: nothing); a marker message
        published after the subscription proves every retained message is in."""
        found = []
        done = threading.Event()
        marker = "test-reset/marker/%d" % id(found)

        def on_message(client, userdata, message):
            if message.topic == marker:
                done.set()
            elif message.retain:
                found.append(bytes(message.payload))

        self.client.on_message = on_message
        self.client.subscribe([(topic, 1), (marker, 1)])[1]
        self.client.publish(marker, b"x", qos=1)
        assert done.wait(5), "the broker did not echo the marker"
        self.client.unsubscribe([topic, marker])
        return found[-1] if found else None

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def paho(broker):
    client = Paho(broker.port)
    yield client
    client.close()


def journal_folder(tmp_path):
    path = str(tmp_path / "energy.d")
    store = EnergyStore(BlockFilesDevice(path, 4096, 16))
    store.load()
    store.set_layout([(0x50, 2)])
    store.commit(COUNTERS, backlog_seq=3, reason=REASON_GROWTH)
    return path


def journal_state(path):
    device = BlockFilesDevice(path, 4096, 16)
    return EnergyStore(device).load()


def gateway(paho, device_id, online=False):
    paho.retain("rbamp/%s/totals" % device_id, json.dumps(TOTALS).encode())
    paho.retain("rbamp/%s/availability" % device_id, b"online" if online else b"offline")
    return "rbamp/%s/totals" % device_id


def reset(capsys, monkeypatch, broker, *argv, typed=None):
    monkeypatch.setattr("sys.stdin", io.StringIO(typed if typed is not None else ""))
    return cli(capsys, "reset-totals", "--broker", "127.0.0.1:%d" % broker.port, *argv)


def test_reset_clears_the_retained_totals_and_formats_the_journal(capsys, monkeypatch, broker, paho, tmp_path):
    topic = gateway(paho, "house")
    path = journal_folder(tmp_path)
    result = reset(capsys, monkeypatch, broker, "--device-id", "house", "--journal", path, typed="house\n")
    assert result.code == 0, result.err
    assert "rbamp/house/totals: retained totals 0x50 import 12.500, 3.250 Wh, export 0.000, 7.750 Wh" in result.out
    assert "journal %s: 0x50 ch1 import 12.500 Wh, export 0.000 Wh; 0x50 ch2 import 3.250 Wh" % path in result.out
    assert "Type the device id (house)" in result.err
    assert paho.retained(topic) is None
    assert journal_state(path) is None
    assert paho.retained("rbamp/house/availability") == b"offline"  # only the totals were touched
    blank = cli(capsys, "journal", path)
    assert_one_line_error(blank, 1, "erased (blank)")


def test_a_wrong_or_missing_confirmation_changes_nothing(capsys, monkeypatch, broker, paho, tmp_path):
    topic = gateway(paho, "shed")
    path = journal_folder(tmp_path)
    for typed, fragment in (("house\n", "'house' is not 'shed'"), ("", "no input")):
        result = reset(capsys, monkeypatch, broker, "--device-id", "shed", "--journal", path, typed=typed)
        assert_one_line_error(result, 1, "not confirmed", fragment, "nothing was changed")
        assert json.loads(paho.retained(topic)) == TOTALS
        assert journal_state(path).totals == COUNTERS


def test_yes_for_scripts_with_json_and_an_image_file(capsys, monkeypatch, broker, paho, tmp_path):
    topic = gateway(paho, "garage")
    path = str(tmp_path / "energy.img")
    device = FileBlockDevice(path, 4096, 16)
    store = EnergyStore(device)
    store.load()
    store.set_layout([(0x50, 2)])
    store.commit(COUNTERS, backlog_seq=1, reason=REASON_GROWTH)
    device.close()
    result = reset(capsys, monkeypatch, broker, "--device-id", "garage", "--journal", path, "--yes", "--json")
    assert result.code == 0, result.err
    report = result.json()
    assert report["broker_totals_before"] == TOTALS and report["cleared"] is True
    assert [row["channel"] for row in report["journal_totals_before"]] == [1, 2]
    assert [row["export_wh"] for row in report["journal_totals_before"]] == [0.0, 7.75]
    assert paho.retained(topic) is None
    device = FileBlockDevice(path, 4096, 16)
    assert EnergyStore(device).load() is None
    device.close()


def test_an_online_gateway_is_refused(capsys, monkeypatch, broker, paho, tmp_path):
    topic = gateway(paho, "running", online=True)
    path = journal_folder(tmp_path)
    result = reset(capsys, monkeypatch, broker, "--device-id", "running", "--journal", path, "--yes")
    assert_one_line_error(result, 1, "shows gateway running online", "stop it first")
    assert json.loads(paho.retained(topic)) == TOTALS and journal_state(path).totals == COUNTERS
    forced = reset(capsys, monkeypatch, broker, "--device-id", "running", "--broker-only", "--yes",
                   "--even-if-online")
    assert forced.code == 0, forced.err
    assert paho.retained(topic) is None and journal_state(path).totals == COUNTERS


def test_what_is_not_a_journal_or_not_reachable_is_left_alone(capsys, monkeypatch, broker, paho, tmp_path):
    topic = gateway(paho, "attic")
    other = tmp_path / "photo.jpg"
    other.write_bytes(bytes(range(256)) * 32)  # 8 KiB of something else: two blocks that are no journal
    result = reset(capsys, monkeypatch, broker, "--device-id", "attic", "--journal", str(other), "--yes")
    assert_one_line_error(result, 1, "nothing was changed")
    assert other.read_bytes() == bytes(range(256)) * 32 and json.loads(paho.retained(topic)) == TOTALS
    missing = reset(capsys, monkeypatch, broker, "--device-id", "attic", "--journal", str(tmp_path / "nope"), "--yes")
    assert_one_line_error(missing, 1, "does not exist")
    assert not (tmp_path / "nope").exists()
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    port = xbroker.free_port()
    unreachable = cli(capsys, "reset-totals", "--broker", "127.0.0.1:%d" % port, "--device-id", "attic",
                      "--broker-only", "--yes")
    assert_one_line_error(unreachable, 1, "cannot reach the MQTT broker at 127.0.0.1:%d" % port)
    assert_one_line_error(reset(capsys, monkeypatch, broker, "--device-id", "attic", "--yes"), 2,
                          "--journal IMAGE", "--broker-only")
    assert_one_line_error(reset(capsys, monkeypatch, broker, "--device-id", "a/b", "--broker-only"), 1,
                          "one MQTT topic level")


def test_the_broker_and_device_id_from_a_config_file(capsys, monkeypatch, broker, paho, tmp_path):
    topic = gateway(paho, "cellar")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"device_id": "cellar", "mqtt": {"host": "127.0.0.1", "port": broker.port},
                                  "modules": [{"address": "0x50"}]}))
    monkeypatch.setattr("sys.stdin", io.StringIO("cellar\n"))
    result = cli(capsys, "reset-totals", "--config", str(config), "--broker-only")
    assert result.code == 0, result.err
    assert "cleared: the broker's retained totals; the gateway starts from zero" in result.out
    assert paho.retained(topic) is None


def test_journal_only_for_a_broker_that_keeps_nothing(capsys, monkeypatch, broker, paho, tmp_path):
    # make run's embedded broker forgets retained messages when it stops: only the journal matters
    path = journal_folder(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO("%s\n" % path))
    result = cli(capsys, "reset-totals", "--journal", path, "--journal-only")
    assert result.code == 0, result.err
    assert "Type the journal's path (%s)" % path in result.err
    assert "0x50 ch2 import 3.250 Wh, export 7.750 Wh" in result.out and "the broker was left alone" in result.out
    assert journal_state(path) is None
    topic = gateway(paho, "porch")
    assert_one_line_error(cli(capsys, "reset-totals", "--journal", path, "--journal-only", "--broker",
                              "127.0.0.1:%d" % broker.port), 2, "leave out --broker")
    assert_one_line_error(cli(capsys, "reset-totals", "--journal-only"), 2, "needs --journal")
    assert json.loads(paho.retained(topic)) == TOTALS


def test_a_data_folder_that_make_run_holds_is_left_alone(capsys, monkeypatch, tmp_path):
    import fcntl
    import os

    path = journal_folder(tmp_path)
    lock = tmp_path / "run.lock"
    lock.write_text("4242\n")
    fd = os.open(str(lock), os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what tools/run_host.py holds while make run runs
    try:
        monkeypatch.setattr("sys.stdin", io.StringIO(""))
        held = cli(capsys, "reset-totals", "--journal", path, "--journal-only", "--yes")
        assert_one_line_error(held, 1, "in use by make run (process 4242)", "stop it first")
        assert journal_state(path).totals == COUNTERS
    finally:
        os.close(fd)
    done = cli(capsys, "reset-totals", "--journal", path, "--journal-only", "--yes")
    assert done.code == 0, done.err
    assert journal_state(path) is None and lock.read_text() == "4242\n"
