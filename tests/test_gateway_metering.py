RUNTIMES = ("cpython", "mpy64", "mpy32")

import asyncio

from gateway.commit_policy import CommitPolicy
from gateway.metering import MeteredModule, Metering
from gateway.store import EnergyStore
from norflash import NorFlash
from rbamp import RbAmp
from gateway_rig import ListLog
from rbampsim import SimI2C, SimModule, VirtualClock, loads


def _rig(period_s=60, store=True, mains_loss_v=0):
    clock = VirtualClock()
    sims = [SimModule("UI2", 0x04, addr=0x50, clock=clock, load=loads.Household(seed=3, start_hour=11.0), seed=1),
            SimModule("UI1", 0x03, addr=0x51, clock=clock, load=loads.Constant([450.0]), seed=2)]
    bus = SimI2C(sims, clock=clock)
    clock.advance_ms(300)
    modules = [MeteredModule(RbAmp(bus, sim.addr), sim.addr) for sim in sims]
    modules[0].dev.attach_drdy(sims[0].drdy)
    log = ListLog()
    journal = policy = None
    if store:
        journal = EnergyStore(NorFlash(block_size=4096, block_count=8))
        journal.load()
        policy = CommitPolicy(1, clock=clock)
    metering = Metering(modules, clock, log, period_s, store=journal, policy=policy,
                        mains_loss_v=mains_loss_v)
    metering.start()
    return clock, sims, bus, metering, log


def _run(clock, metering, minutes, during=None, sims=()):
    """Run the metering tasks for `minutes` of virtual time (or while `during` runs). Each
    record gets the simulators' ground truth at its latch, as "truth" (a list per module)."""
    records = []

    def on_period(record):
        record["truth"] = [sim.truth.snapshot() for sim in sims]
        records.append(record)

    metering.on_period = on_period

    async def main():
        tasks = [asyncio.create_task(metering.sampler()), asyncio.create_task(metering.period_loop()),
                 asyncio.create_task(metering.journal_upkeep())]
        if during is not None:
            await during()
        else:
            await clock.asleep_ms(int(minutes * 60000))
        for task in tasks:
            task.cancel()
        await asyncio.sleep(0)

    asyncio.run(main())
    return records


def test_metering_matches_ground_truth_and_commits_to_the_journal():
    clock, sims, bus, metering, log = _rig()
    starts = [sim.truth.snapshot() for sim in sims]
    records = _run(clock, metering, 30.5, sims=sims)
    assert len(records) == 30 and [r["seq"] for r in records] == list(range(1, 31))
    assert all(r["modules"]["0x50"]["valid"] and r["modules"]["0x51"]["valid"] for r in records)
    # DRDY-paced sampling at the module's 5 Hz
    assert metering.samples >= 0.95 * 30 * 60 * 5, metering.samples
    totals = metering.totals()  # [0x50 ch0 imp, exp, ch1 imp, exp, 0x51 ch0 imp, exp] mWh
    at_last_latch = records[-1]["truth"]
    for ch in range(2):
        # import comes from the latched periods, export from sampling (right up to now)
        imp = (at_last_latch[0].imported[ch] - starts[0].imported[ch]) / 3600000000000
        exp = sims[0].truth.export_wh_since(starts[0], ch) * 1000
        assert abs(totals[2 * ch] - imp) <= 0.002 * imp + 500, (ch, totals, imp)
        assert abs(totals[2 * ch + 1] - exp) <= 0.002 * exp + 500, (ch, totals, exp)
    assert totals[3] > 100000  # the PV channel exported > 100 Wh at midday
    imp1 = (at_last_latch[1].imported[0] - starts[1].imported[0]) / 3600000000000
    assert abs(totals[4] - imp1) <= 200, (totals[4], imp1)
    assert metering.commits >= 30 and metering.commit_errors == 0
    durable = metering.store.durable_totals()
    for i in range(len(totals)):
        assert totals[i] - durable[i] <= 5000 + 1100, (i, totals, durable)  # the commit policy's bound
    reopened = EnergyStore(metering.store._bdev).load()
    assert reopened.totals == durable and reopened.backlog_seq == metering.store.backlog_seq
    assert reopened.layout == [(0x50, 2), (0x51, 1)]


def test_restart_restores_totals_and_the_period_sequence():
    clock, sims, bus, metering, log = _rig()
    _run(clock, metering, 5)
    state = EnergyStore(metering.store._bdev).load()
    clock2, sims2, bus2, metering2, log2 = _rig()
    metering2.restore(state.totals)
    metering2.period_seq = state.backlog_seq
    assert metering2.totals() == state.totals
    records = _run(clock2, metering2, 2.5)
    assert records[0]["seq"] == state.backlog_seq + 1
    assert all(metering2.totals()[i] >= state.totals[i] for i in range(6))


def test_unplugged_module_is_reported_and_recovered_while_the_other_meters_on():
    clock, sims, bus, metering, log = _rig()
    start = sims[0].truth.snapshot()

    async def during():
        await clock.asleep_ms(120000)
        sims[1].unplug()
        await clock.asleep_ms(180000)
        assert metering.modules[1].status == "unreachable"
        sims[1].plug()
        await clock.asleep_ms(180000)

    records = _run(clock, metering, 0, during, sims=sims)
    assert metering.modules[1].status == "ok"
    assert any("unreachable" in line for line in log.lines)
    assert any("is back" in line for line in log.lines)
    imp = (records[-1]["truth"][0].imported[0] - start.imported[0]) / 3600000000000
    assert abs(metering.totals()[0] - imp) <= 0.002 * imp + 500, (metering.totals()[0], imp)
    assert metering.samples >= 0.9 * 8 * 60 * 5
    assert records[-1]["modules"]["0x51"]["valid"]


def test_an_emi_burst_longer_than_the_retries_costs_no_energy():
    # Every transaction fails for 400 ms: one or two samples fail after all their retries. The
    # module must not count as unreachable (recovering re-primes it and loses its period).
    clock, sims, bus, metering, log = _rig()
    start = sims[0].truth.snapshot()

    async def during():
        await clock.asleep_ms(90000)
        for sim in sims:
            sim.faults.add_emi_burst(clock.now_us() + 10000, 400000, fail_rate=1.0)
        await clock.asleep_ms(120000)

    records = _run(clock, metering, 0, during, sims=sims)
    assert sum(m.transient_errors for m in metering.modules) >= 2
    assert all(m.failures == 0 and m.status == "ok" for m in metering.modules)
    assert not any("unreachable" in line for line in log.lines), log.lines
    imp = (records[-1]["truth"][0].imported[0] - start.imported[0]) / 3600000000000
    assert abs(metering.totals()[0] - imp) <= 0.0005 * imp + 50, (metering.totals()[0], imp)
    exp = sims[0].truth.export_wh_since(start, 1) * 1000
    assert abs(metering.totals()[3] - exp) <= 0.002 * exp + 500, (metering.totals()[3], exp)


def test_energy_a_module_lost_in_a_reboot_comes_back_from_the_samples():
    # A reboot 40 s into a period wipes the module's 40 s of accumulation; the gateway sampled
    # those 40 s itself and puts them back.
    clock, sims, bus, metering, log = _rig()
    start = sims[0].truth.snapshot()
    sims[0].reboot_at(clock.now_us() + 100000000)
    records = _run(clock, metering, 3.5, sims=sims)
    assert metering.modules[0].dev.stats.reboots == 1
    assert any(r["modules"]["0x50"].get("rebooted") for r in records)
    assert metering.modules[0].ledger.refilled_mwh > 1000  # ~40 s of the ~150 W base load
    imp = (records[-1]["truth"][0].imported[0] - start.imported[0]) / 3600000000000
    assert abs(metering.totals()[0] - imp) <= 0.0005 * imp + 50, (metering.totals()[0], imp)


def test_sampling_path_allocates_nothing():
    import xrt

    if not xrt.is_micropython():
        raise xrt.Skip("heap_lock is MicroPython's")
    import micropython

    clock, sims, bus, metering, log = _rig(store=False)
    metering.sample_once()
    micropython.heap_lock()
    try:
        for _ in range(1000):
            clock.advance_ms(200)
            metering.sample_once()
    finally:
        micropython.heap_unlock()
    assert metering.samples == 1001
