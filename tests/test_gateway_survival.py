"""Energy survives a real installation's life, end to end: the real main.py under MicroPython with
the host profile (its simulated modules in a simulator process that outlives the gateway), a real
mosquitto, and paho-mqtt watching. Host-side tests."""

import os
import random
import time

from gateway.flashdev import BlockFilesDevice
from gateway.store import EnergyStore
from support_e2e import Gateway, Watcher, base_config, wait_until

BASE = "rbamp/e2e-gw/"
MODULE_AVAILABILITY = BASE + "module/0x50/availability"


def _journal(gateway):
    device = BlockFilesDevice(os.path.join(gateway.data_dir, "energy.d"), 4096, 16)
    try:
        return EnergyStore(device).load()
    finally:
        device.close()


def _latest(watcher, suffix):
    values = watcher.json_on(BASE + suffix)
    return values[-1] if values else None


def _last_payload(watcher, topic):
    seen = watcher.on(topic)
    return seen[-1][1] if seen else None


def test_boot_with_the_module_unplugged_keeps_the_journal_and_goes_on_when_it_is_plugged(broker, gateways, tmp_path):
    watcher = Watcher(broker.port)
    gateway = Gateway(str(tmp_path / "gw"), config=base_config(broker.port))
    gateways.append(gateway)
    gateway.start()
    watcher.wait_for(lambda: len(watcher.json_on(BASE + "period")) >= 3, 30, "three periods")
    gateway.stop()  # an orderly stop (and a new simulator: the module is unpowered at next boot)
    kept = _journal(gateway)
    assert kept.layout == [(0x50, 2)] and kept.totals[0] > 0, kept

    gateway.control("unplug 0x50")  # applied before the next gateway's first bus transaction
    seen_before = len(watcher.json_on(BASE + "state"))
    gateway.start()
    watcher.wait_for(lambda: len(watcher.json_on(BASE + "state")) > seen_before + 2, 30, "state without the module")
    assert _latest(watcher, "state")["modules"]["0x50"]["status"] == "unreachable"
    watcher.wait_for(lambda: _last_payload(watcher, MODULE_AVAILABILITY) == b"offline", 20,
                     "the module's sensors unavailable")
    assert _last_payload(watcher, BASE + "availability") == b"online"  # the gateway itself is up
    absent = _journal(gateway)
    assert absent.layout == kept.layout and absent.totals == kept.totals, (absent, kept)
    log = gateway.log()
    assert "does not answer" in log and "Traceback" not in log and "fatal" not in log

    gateway.control("plug 0x50")
    watcher.wait_for(lambda: _last_payload(watcher, MODULE_AVAILABILITY) == b"online", 30, "the module back")
    watcher.wait_for(lambda: _latest(watcher, "state")["modules"]["0x50"]["status"] == "ok", 30, "metering again")
    watcher.wait_for(lambda: _journal(gateway).totals[0] > kept.totals[0], 30, "totals growing from the kept ones")
    after = _journal(gateway)
    assert after.layout == kept.layout
    assert all(after.totals[i] >= kept.totals[i] for i in range(4)), (after, kept)
    totals = _latest(watcher, "totals")["0x50"]
    assert totals["import_wh"][0] >= kept.totals[0] / 1000
    watcher.stop()


def test_sigkill_restarts_keep_the_totals_within_a_window_each_of_the_truth(broker, gateways, tmp_path):
    restarts = 4
    watcher = Watcher(broker.port)
    gateway = Gateway(str(tmp_path / "gw"), config=base_config(broker.port))
    gateways.append(gateway)
    gateway.start()
    watcher.wait_for(lambda: len(watcher.json_on(BASE + "period")) >= 2, 30, "periods")
    rng = random.Random(12)
    for _ in range(restarts):
        time.sleep(rng.uniform(0.0, 2.0))  # a random phase of the 2 s period: what is measured
        gateway.kill9()
        periods = len(watcher.json_on(BASE + "period"))
        gateway.start()
        watcher.wait_for(lambda: len(watcher.json_on(BASE + "period")) >= periods + 2, 30, "periods again")
    # the mains go off: no more energy; two periods later everything the module saw is latched
    gateway.control("mains 0x50 off")
    wait_until(lambda: not gateway.truth()["0x50"]["mains"], 10, "mains off")
    periods = len(watcher.json_on(BASE + "period"))
    watcher.wait_for(lambda: len(watcher.json_on(BASE + "period")) >= periods + 3, 30, "latched")
    truth = gateway.truth()["0x50"]
    gateway.stop(keep_simulator=True)  # an orderly stop: the journal holds everything counted
    counted = _journal(gateway).totals
    log = gateway.log()
    assert "mains lost (RT voltage below the threshold)" in log, log[-3000:]
    for ch in range(2):
        lost_wh = truth["import_wh"][ch] - counted[2 * ch] / 1000
        # a window (0.2 s) per restart and one for the first prime, at up to 5 kW
        bound = (restarts + 1) * 5000 * 0.2 / 3600
        assert abs(lost_wh) <= bound, (ch, lost_wh, bound, truth, counted)
    assert log.count("gateway 0.1.0 up") == restarts + 1
    watcher.stop()
