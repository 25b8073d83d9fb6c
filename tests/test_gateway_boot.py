"""Energy survives what a real installation goes through: a module absent, late or wrong at boot,
a stuck bus, gateway restarts at any phase of a period (with or without a module reboot), the
mains collapsing, and config changes of the module set. The whole gateway runs on virtual time
against simulated modules and the NOR flash model (tests/support_gateway.py)."""

RUNTIMES = ("cpython", "mpy64", "mpy32")

import os

from gateway.flashdev import FileBlockDevice
from gateway.store import EnergyStore
from rbampsim import loads
from support_gateway import MainsCollapse, Rig, boot, config, constant, journal

WINDOW_S = 0.2


def _window_mwh(watts):
    return watts * WINDOW_S / 3.6


def _ok(log):
    assert "fatal" not in log.text(), log.text()


def _module(gateway, addr=0x50):
    for module in gateway.metering.modules:
        if module.address == addr:
            return module
    raise KeyError(addr)


def test_module_absent_at_boot_keeps_the_journal_and_joins_when_it_answers():
    rig = Rig("absent", [("UI2", 0x04, 0x50, constant(1000.0, 500.0))])
    cfg = config([{"address": 0x50}])
    first, _ = boot(rig, cfg, 300)
    before = journal(rig)
    assert before.layout == [(0x50, 2)] and before.totals[0] > 60000, before
    sim = rig.sim(0x50)
    sim.unplug()
    seen = {}

    async def during(gateway):
        await rig.clock.asleep_ms(180000)
        seen["status"] = _module(gateway).status
        seen["journal"] = journal(rig)
        seen["state"] = gateway.state_payload()
        seen["totals"] = gateway.totals_payload()
        sim.plug()
        seen["plugged"] = sim.truth.snapshot()
        await rig.clock.asleep_ms(300000)
        seen["after"] = _module(gateway).status

    gateway, log = boot(rig, cfg, 0, during)
    _ok(log)
    assert gateway.device_id == first.device_id  # the same Home Assistant device without the module
    assert seen["status"] == "unreachable", seen
    assert "does not answer" in log.text()
    absent = seen["journal"]
    assert absent.layout == [(0x50, 2)] and absent.totals[:4] == before.totals[:4], (absent, before)
    assert seen["state"]["modules"]["0x50"]["status"] == "unreachable"
    assert seen["totals"]["0x50"]["import_wh"][0] == before.totals[0] / 1000  # kept, published
    assert seen["after"] == "ok" and "is back" in log.text()
    after = journal(rig)
    assert after.layout == [(0x50, 2)]
    # the totals go on from the kept values: everything since the module came back is counted
    grown = after.totals[0] - before.totals[0]
    expected = rig.sim(0x50).truth.import_wh_since(seen["plugged"], 0) * 1000
    assert abs(grown - expected) <= 3 * _window_mwh(1000.0) + 1000.0 * 60 / 3.6, (grown, expected)
    assert grown >= expected - 1000.0 * 60 / 3.6 - _window_mwh(1000.0)  # at most the open period


def test_a_first_boot_without_the_module_adds_it_to_the_journal_when_it_answers():
    rig = Rig("first-absent", [("UI2", 0x04, 0x50, constant(800.0, 0.0))])
    sim = rig.sim(0x50)
    sim.unplug()
    cfg = config([{"address": 0x50}])
    seen = {}

    async def during(gateway):
        await rig.clock.asleep_ms(30000)
        seen["journal"] = journal(rig)
        seen["id"] = gateway.device_id
        sim.plug()
        await rig.clock.asleep_ms(200000)

    gateway, log = boot(rig, cfg, 0, during)
    _ok(log)
    assert seen["journal"] is None  # nothing known, nothing written
    state = journal(rig)
    assert state.layout == [(0x50, 2)] and state.totals[0] > 0, state
    # the device id chosen at this first boot (from the board: no module answered) stays
    gateway2, log2 = boot(rig, cfg, 5)
    assert gateway2.device_id == seen["id"] == "rbamp-b0a4d0c0ffee"


def test_a_damaged_device_id_file_is_replaced_not_used():
    rig = Rig("damaged-id", [("UI1", 0x04, 0x50, constant(500.0))])
    with open(rig.data_dir + "/device_id", "w") as f:
        f.write("house/meter#1")  # not one MQTT topic level: the link would refuse it
    gateway, log = boot(rig, config([{"address": 0x50}]), 5)
    assert gateway.device_id.startswith("rbamp-") and "/" not in gateway.device_id, gateway.device_id
    assert "device id kept in" in log.text(), log.text()
    with open(rig.data_dir + "/device_id") as f:
        assert f.read() == gateway.device_id  # the new choice is kept for the next boots


def test_declared_channels_give_a_layout_before_the_module_ever_answered():
    rig = Rig("declared", [("UI1", 0x04, 0x50, constant(500.0))])
    rig.sim(0x50).unplug()
    boot(rig, config([{"address": 0x50, "channels": 1}]), 20)
    state = journal(rig)
    assert state.layout == [(0x50, 1)] and state.totals == [0, 0]


def test_wrong_device_at_the_address_is_not_metered_and_the_journal_is_kept():
    rig = Rig("wrong", [("UI2", 0x04, 0x50, constant(1000.0, 200.0))])
    cfg = config([{"address": 0x50}])
    boot(rig, cfg, 200)
    before = journal(rig)
    other = Rig("wrong-2", [("UI1", 0x04, 0x50, constant(3000.0))])
    other.flash = rig.flash  # the same board, another module at the address
    gateway, log = boot(other, cfg, 120)
    _ok(log)
    assert _module(gateway).status == "wrong device"
    assert "a UI1 with 1 channel(s) answers" in log.text()
    after = journal(other)
    assert after.layout == [(0x50, 2)] and after.totals[:4] == before.totals[:4]


def test_a_stuck_bus_at_boot_loses_nothing_and_the_module_is_begun_once_it_clears():
    rig = Rig("stuck", [("UI2", 0x04, 0x50, constant(1200.0, 0.0))])
    cfg = config([{"address": 0x50}])
    boot(rig, cfg, 200)
    before = journal(rig)
    rig.bus.faults.stuck = True
    seen = {}

    async def during(gateway):
        await rig.clock.asleep_ms(60000)
        seen["journal"] = journal(rig)
        rig.bus.faults.stuck = False
        await rig.clock.asleep_ms(130000)

    gateway, log = boot(rig, cfg, 0, during)
    _ok(log)
    assert seen["journal"].totals[:4] == before.totals[:4]
    assert _module(gateway).status == "ok"
    assert journal(rig).totals[0] > before.totals[0]


def _restarts(phases_s, reboot_module=False):
    """A 3 kW load until STOP_S, then nothing; a gateway restart at each phase (seconds into a
    period). Returns (journal import, truth import) in mWh once everything was latched."""
    stop_s = 60 * (len(phases_s) + 3) * 2
    load = loads.Schedule([(0, [3000.0]), (stop_s, [0.0])])
    rig = Rig("restarts", [("UI1", 0x04, 0x50, load)])
    cfg = config([{"address": 0x50}])
    start = rig.sim(0x50).truth.snapshot()
    for phase in phases_s:
        gateway, log = boot(rig, cfg, 120 + phase)  # two periods, then a crash mid-period
        _ok(log)
        if reboot_module:
            rig.sim(0x50).power_cycle()
    remaining = stop_s + 180 - rig.clock.now_s()
    gateway, log = boot(rig, cfg, remaining)
    _ok(log)
    return journal(rig).totals[0], rig.sim(0x50).truth.import_wh_since(start, 0) * 1000


def test_gateway_restarts_at_any_phase_lose_at_most_one_window_each():
    phases = (0.03, 0.7, 13.0, 37.5, 59.9)
    counted, truth = _restarts(phases)
    lost = truth - counted
    # A recovered period is counted in whole windows: the window in progress at the crashed
    # gateway's last latch is counted twice, the one in progress at the new latch not at all;
    # each restart is off by less than one window either way (and the first boot's prime may
    # drop one more).
    window = _window_mwh(3000.0)
    assert -len(phases) * window <= lost <= (len(phases) + 1) * window, (lost, counted, truth)


def test_a_module_reboot_during_a_gateway_restart_counts_what_it_still_holds():
    counted, truth = _restarts((25.0,), reboot_module=True)
    lost = truth - counted
    # the 25 s the module had accumulated died with it; nothing is counted twice. The new
    # gateway's first latch after the module's power-on primes and is thrown away (protocol.md),
    # so the module's boot (~250 ms) is lost too: up to one more window, depending on where the
    # gateway's wake-ups fall in the window (CPython and MicroPython order them differently).
    gone = 3000.0 * 25 / 3.6
    window = _window_mwh(3000.0)
    assert gone - 2 * window <= lost <= gone + 3 * window, (lost, gone)


def _power_cut(threshold_v):
    """The mains collapse 20 s into a period; 0.5 s later the gateway's supply dies too and the
    module is unpowered until the mains come back. Returns the import lost, in mWh."""
    watts = 2000.0
    load = MainsCollapse(constant(watts))
    rig = Rig("mains-%d" % threshold_v, [("UI1", 0x04, 0x50, load)])
    cfg = config([{"address": 0x50}], mains_loss={"voltage_v": threshold_v})
    start = rig.sim(0x50).truth.snapshot()
    seen = {}

    async def during(gateway):
        await rig.clock.asleep_ms(140000)
        load.collapse(rig.clock.now_us())
        await rig.clock.asleep_ms(500)
        seen["commit_us"] = gateway.metering.last_mains_commit_us

    gateway, log = boot(rig, cfg, 0, during)
    sim = rig.sim(0x50)
    sim.unplug()
    rig.clock.advance_ms(30000)
    load.restore(rig.clock.now_us())
    sim.plug()
    boot(rig, cfg, 130)
    load.collapse(rig.clock.now_us())  # nothing more to count: every window is latched by now
    gateway, log2 = boot(rig, cfg, 61)
    lost = sim.truth.import_wh_since(start, 0) * 1000 - journal(rig).totals[0]
    return lost, seen["commit_us"], log


def test_a_mains_collapse_is_committed_at_once_and_a_power_cut_then_loses_nothing():
    lost, commit_us, log = _power_cut(150)
    assert "mains lost (RT voltage below the threshold)" in log.text(), log.text()
    assert commit_us is not None and commit_us < 200000, commit_us
    assert abs(lost) <= 2 * _window_mwh(2000.0), lost


def test_without_the_mains_loss_commit_the_open_period_is_lost():
    lost, commit_us, log = _power_cut(0)
    assert commit_us is None
    assert lost >= 2000.0 * 19 / 3.6, lost  # the 20 s the module held when it lost power


def test_a_module_that_stops_pulsing_drdy_triggers_the_commit():
    rig = Rig("drdy-stop", [("UI1", 0x04, 0x50, constant(1500.0))])
    cfg = config([{"address": 0x50}], mains_loss={"voltage_v": 0})  # DRDY is the only sign
    seen = {}

    async def during(gateway):
        await rig.clock.asleep_ms(150000)
        rig.sim(0x50).unplug()  # supply gone: no more DRDY pulses, no answers
        await rig.clock.asleep_ms(1000)
        seen["commit_us"] = gateway.metering.last_mains_commit_us
        seen["journal"] = journal(rig)
        seen["truth"] = rig.sim(0x50).truth.import_wh(0) * 1000

    gateway, log = boot(rig, cfg, 0, during)
    assert "mains lost (DRDY stopped)" in log.text(), log.text()
    # the 30 s since the last latch were taken from the samples and committed
    assert abs(seen["truth"] - seen["journal"].totals[0]) <= 4 * _window_mwh(1500.0), seen


def test_config_dropping_a_module_keeps_the_old_journal_aside():
    rig = Rig("dropped", [("UI2", 0x04, 0x50, constant(900.0, 100.0)), ("UI1", 0x04, 0x51, constant(400.0))])
    boot(rig, config([{"address": 0x50}, {"address": 0x51}]), 200)
    before = journal(rig)
    assert before.layout == [(0x50, 2), (0x51, 1)]
    gateway, log = boot(rig, config([{"address": 0x50}]), 10)
    _ok(log)
    assert "module 0x51 is no longer in config.json" in log.text()
    after = journal(rig)
    assert after.layout == [(0x50, 2)] and after.totals[:4] >= before.totals[:4]
    archive = rig.data_dir + "/energy.%d.img" % before.seq
    kept = EnergyStore(FileBlockDevice(archive, 4096, 16)).load()
    assert kept.layout == before.layout and kept.totals == before.totals


def test_config_declaring_another_channel_count_keeps_the_old_totals_aside():
    rig = Rig("redeclared", [("UI2", 0x04, 0x50, constant(900.0, 100.0))])
    boot(rig, config([{"address": 0x50}]), 130)
    before = journal(rig)
    gateway, log = boot(rig, config([{"address": 0x50, "channels": 1}]), 10)
    assert "declares 1 channel(s) for module 0x50, the journal holds 2" in log.text()
    assert _module(gateway).status == "wrong device"  # a UI2 still answers there
    after = journal(rig)
    assert after.layout == [(0x50, 1)] and after.totals == [0, 0]
    kept = EnergyStore(FileBlockDevice(rig.data_dir + "/energy.%d.img" % before.seq, 4096, 16)).load()
    assert kept.totals == before.totals


def test_a_fallback_config_never_changes_the_journal():
    from gateway.config import LoadResult

    rig = Rig("fallback", [("UI2", 0x04, 0x50, constant(900.0, 100.0)), ("UI1", 0x04, 0x51, constant(400.0))])
    boot(rig, config([{"address": 0x50}, {"address": 0x51}]), 130)
    before = journal(rig)
    # config.json broken: safe mode with the defaults (module 0x50 only)
    safe = config([{"address": 0x50, "channels": 1}])
    safe = LoadResult(safe.config, False, "config.json: not valid JSON", "defaults", True)
    gateway, log = boot(rig, safe, 130)
    _ok(log)
    assert "the journal's modules are kept as they are" in log.text()
    after = journal(rig)
    assert after.layout == before.layout and after.seq > before.seq
    assert after.totals[4] > before.totals[4]  # 0x51 is metered too: the journal named it
    assert "energy.%d.img" % before.seq not in os.listdir(rig.data_dir)  # nothing to keep aside


def test_the_log_says_which_config_is_in_use_and_why_before_the_device_id():
    from gateway.config import LoadResult

    rig = Rig("which-config", [("UI1", 0x04, 0x50, constant(400.0))])
    cfg = config([{"address": 0x50}])
    gateway, log = boot(rig, cfg, 2)
    assert "config: " + rig.data_dir + "/config.json" in log.text(), log.text()
    fallback = LoadResult(cfg.config, False, "config.json: not valid JSON: trailing comma", "last_good", False)
    gateway, log = boot(rig, fallback, 2)
    text = log.text()
    said = text.index("config: the last good copy " + rig.data_dir + "/config.last_good.json")
    assert text.index("not valid JSON: trailing comma") < said < text.index("device id"), text
    safe = LoadResult(cfg.config, False, "config.json: not valid JSON", "defaults", True)
    gateway, log = boot(rig, safe, 2)
    assert "config: safe mode" in log.text(), log.text()


def test_a_health_line_reaches_the_console_after_boot_and_every_ten_minutes():
    rig = Rig("health", [("UI1", 0x04, 0x50, constant(500.0))])
    gateway, log = boot(rig, config([{"address": 0x50}]), 31 + 600)
    lines = [line for line in log.lines if "health: uptime" in line]
    assert len(lines) == 2, lines
    assert "periods 10" in lines[1] and "commit errors 0" in lines[1], lines
    import gc

    assert ("heap free None" in lines[0]) == (not hasattr(gc, "mem_free")), lines
