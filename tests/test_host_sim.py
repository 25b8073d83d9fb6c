"""Host mode behaves like a board: the simulated modules live in a simulator server of their own
(tools/rbampsim/server.py) that outlives the gateway, obeys sim_control before a gateway's first
bus transaction, and keeps the exact truth. Host-side tests, against the real main.py under
MicroPython, a real mosquitto and paho-mqtt."""

import errno
import json
import os
import struct

import pytest
from rbampsim import RealClock, SimI2C, SimModule, remote
from rbampsim import registers as R
from rbampsim import server as simserver
from support_e2e import Gateway, Watcher, base_config, wait_until

BASE = "rbamp/e2e-gw/"


def _availability(watcher):
    seen = watcher.on(BASE + "availability")
    return seen[-1][1] if seen else None


def _u32(data):
    return struct.unpack("<I", data)[0]


def test_the_simulator_outlives_a_killed_gateway_and_keeps_its_period_accumulator(broker, gateways, tmp_path):
    watcher = Watcher(broker.port)
    gateway = Gateway(str(tmp_path / "gw"), config=base_config(broker.port)).start()
    gateways.append(gateway)
    watcher.wait_for(lambda: len(watcher.json_on(BASE + "period")) >= 2, 30, "two periods")
    sim_pid = gateway.simulator_pid()
    before = gateway.truth()["0x50"]
    assert before["boots"] == 1 and before["present"]
    gateway.kill9()
    watcher.wait_for(lambda: _availability(watcher) == b"offline", 20, "the last will")
    # Nobody latches now: the module goes on accumulating its period (a running gateway with
    # period_s=2 latches every ~10 windows) and counting its uptime.
    gap = wait_until(lambda: (lambda t: t if t["period_windows"] >= 20 and t["uptime_s"] > before["uptime_s"] + 2
                              else None)(gateway.truth()["0x50"]), 30, "the module running on alone")
    assert gateway.simulator_pid() == sim_pid and gap["boots"] == 1
    gateway.start()
    assert gateway.simulator_pid() == sim_pid  # the same server: not started again
    watcher.wait_for(lambda: _availability(watcher) == b"online", 30, "online again")
    # The new gateway's first latch collects everything the module accumulated while no gateway
    # ran: its commit count covers the whole gap (the register holds it until the next latch).
    wait_until(lambda: _u32(gateway.peek(0x50, R.PERIOD_COMMIT_CNT, 4)) >= gap["period_windows"], 30,
               "a latch with the windows of the gap")
    after = gateway.truth()["0x50"]
    assert after["boots"] == 1 and after["uptime_s"] >= gap["uptime_s"]  # never rebooted
    for ch in range(2):
        assert after["import_uwh"][ch] >= gap["import_uwh"][ch] and after["export_uwh"][ch] >= gap["export_uwh"][ch]
    assert "rebooted" not in gateway.log()
    watcher.stop()


@pytest.mark.parametrize("simulator", ["fresh", "running", "auto"])
def test_sim_control_written_before_the_gateway_starts_applies_before_its_first_transaction(
        simulator, broker, gateways, tmp_path):
    """fresh: the server starts with the command pending; running: the server runs, the gateway
    connects later; auto: the gateway starts the server itself (as a plain `micropython main.py`
    does), which outlives it until stopped."""
    gateway = Gateway(str(tmp_path / "gw"), config=base_config(broker.port),
                      simulator="auto" if simulator == "auto" else "process")
    gateways.append(gateway)
    if simulator == "running":
        gateway.start_simulator()
        wait_until(lambda: gateway.truth()["0x50"]["present"], 10, "the module running")
    gateway.control("unplug 0x50")
    gateway.start()
    wait_until(lambda: "no device acknowledges" in gateway.log(), 30, "the module absent at boot")
    assert not os.path.exists(os.path.join(gateway.data_dir, "sim_control"))  # consumed
    truth = gateway.truth()["0x50"]  # rewritten as soon as the commands were applied
    assert truth["present"] is False and truth["boots"] == 1  # never seen powered by this gateway
    sim_pid = gateway.simulator_pid()
    assert sim_pid is not None
    if simulator == "auto":
        gateway.kill9()
        assert gateway.simulator_pid() == sim_pid  # detached: it outlives the gateway
        gateway.stop()
        assert not simserver._alive(sim_pid) and gateway.simulator_pid() is None
        assert not os.path.exists(os.path.join(gateway.data_dir, remote.PORT_FILE))


def _in_process_errno():
    """What the in-process SimI2C raises for an unplugged module (the driver sees this)."""
    clock = RealClock()
    module = SimModule("UI2", R.VERSION_V13, addr=0x50, clock=clock)
    bus = SimI2C([module], clock=clock)
    module.unplug()
    with pytest.raises(OSError) as info:
        bus.readfrom_mem_into(0x50, R.UPTIME_S, bytearray(4))
    return info.value.args[0]


def test_sim_truth_holds_exact_totals_per_module_and_channel_and_the_link_keeps_the_bus_errors(tmp_path):
    data = str(tmp_path / "sim")
    os.makedirs(data)
    with open(os.path.join(data, "config.json"), "w") as f:
        json.dump({"modules": [{"address": 0x50}, {"address": 0x51}]}, f)
    with open(os.path.join(data, "sim_control"), "w") as f:
        f.write("mains 0x51 off\nwiggle 0x50\n")  # a bad line is logged; the good one still applies
    proc = simserver.start(data, env=dict(os.environ, RBAMP_SIM="UI2@1.3", RBAMP_SIM_HOUR="12"))
    bus = remote.RemoteI2C(data, [0x50, 0x51])
    try:
        assert bus.connect()
        # a module answers ~10 ms after its power-up (protocol.md): on a loaded machine the first
        # scan may come sooner than that after the server started
        wait_until(lambda: bus.scan() == [0x50, 0x51], 10, "both modules answering")

        def truth():
            with open(os.path.join(data, "sim_truth.json")) as f:
                return json.load(f)

        first = wait_until(lambda: (lambda t: t if t["0x50"]["import_uwh"][0] > 0 else None)(truth()), 10,
                           "energy in the truth")
        assert set(first) == {"0x50", "0x51"}
        for entry in first.values():
            assert len(entry["import_wh"]) == len(entry["export_wh"]) == 2
            assert all(isinstance(v, int) for v in entry["import_uwh"] + entry["export_uwh"])
            assert abs(entry["import_wh"][0] - entry["import_uwh"][0] / 1e6) < 1e-6
            assert entry["present"] is True
        assert first["0x50"]["mains"] is True and first["0x51"]["mains"] is False
        assert first["0x51"]["import_uwh"] == [0, 0] and first["0x51"]["export_uwh"] == [0, 0]
        with open(os.path.join(data, "sim.log")) as f:
            assert "'wiggle 0x50' is not a command" in f.read()

        # mains off: the module answers, measures 0 V and 0 W, and its truth stands still
        u_rms = bytearray(4)
        bus.readfrom_mem_into(0x51, R.U_RMS, u_rms)
        assert struct.unpack("<f", u_rms)[0] == 0.0
        bus.control("mains 0x51 on")
        wait_until(lambda: truth()["0x51"]["import_uwh"][0] > 0, 10, "0x51 metering with mains back")
        bus.readfrom_mem_into(0x51, R.U_RMS, u_rms)
        assert struct.unpack("<f", u_rms)[0] > 200

        # DRDY: the first address of the hello is the pin's module; its edges come ~5 a second
        wait_until(lambda: bus.poll() or bus.pin.edges >= 5, 10, "DRDY edges")

        # unplugged: the same OSError as the in-process bus, and the truth says so
        bus.control("unplug 0x50")
        with pytest.raises(OSError) as info:
            bus.readfrom_mem_into(0x50, R.UPTIME_S, bytearray(4))
        assert info.value.args[0] == _in_process_errno() == errno.ENODEV
        assert bus.scan() == [0x51]
        wait_until(lambda: truth()["0x50"]["present"] is False, 5, "0x50 absent in the truth")
        with pytest.raises(ValueError, match="no simulated module at 0x52"):
            bus.control("reboot 0x52")
    finally:
        bus.close()
        simserver.stop(data, pid=proc.pid)
        proc.wait(10)
    with open(os.path.join(data, "sim_truth.json")) as f:
        last = json.load(f)  # written at exit too
    assert last["0x50"]["present"] is False and last["0x51"]["import_uwh"][0] > 0
    assert not os.path.exists(os.path.join(data, remote.PORT_FILE))
