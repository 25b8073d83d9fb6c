"""Host tests of ``rbamp period``, ``watch`` and ``fleet`` on the simulator's virtual clock: the
energy the CLI reports is compared with the simulator's exact ground truth and with the load."""

import re

from rbamp_cli.buses import Session
from rbamp_cli.sim import build
from rbamp_cli.values import load_spec, sim_specs
from rbampsim import SimModule, SimSMBus, VirtualClock, loads
from support_cli import VIRTUAL, assert_one_line_error, cli


def session_of(spec, load):
    return build([sim_specs(spec)], load_spec(load), 100000, "virtual")


def close(a, b, rel):
    return abs(a - b) <= rel * abs(b)


def test_period_reports_each_period_and_energy_matching_the_truth(capsys):
    for version in ("1.3", "1.2"):
        session = session_of("UI2@" + version, "constant:1000,-300")
        start_us = session.clock.now_us()
        result = cli(capsys, "period", "--every", "60", "--count", "3", "--json", session=session)
        assert result.code == 0, result.err
        records = result.records()
        periods = [r for r in records if "period" in r]
        assert [p["period"] for p in periods] == [1, 2, 3] and all(p["valid"] for p in periods)
        for p in periods:
            assert abs(p["dt_ms"] - 60000) <= 5, p
            assert close(p["avg_p"][0], 1000.0, 1e-4) and p["avg_p"][1] == 0.0  # BASIC clamp: no export
            assert close(p["energy_wh"][0], 1000.0 / 60, 1e-3)
        summary = records[-1]["summary"]
        assert summary["periods"] == 3 and summary["stale"] == 0
        assert close(summary["total_wh"][0], 50.0, 1e-3) and close(summary["sim_truth_wh"][0], 50.0, 1e-3)
        assert close(summary["total_wh"][0], summary["sim_truth_wh"][0], 1e-3)
        assert summary["total_wh"][1] == 0.0
        # three minutes of virtual time went by (this test takes a fraction of a second)
        assert session.clock.now_us() - start_us >= 180000000


def test_period_text_and_progress(capsys):
    result = cli(capsys, "period", "--sim", "UI1@1.3", *VIRTUAL, "--load", "constant:600", "--every", "30",
                 "--count", "2", "--progress")
    assert result.code == 0, result.err
    assert "period 1/2  30.00 s" in result.out and "period 2/2" in result.out
    total = re.search(r"2 period\(s\), 0 stale: consumption ([0-9.]+) Wh", result.out)
    truth = re.search(r"simulator truth: consumption ([0-9.]+) Wh", result.out)
    assert close(float(total.group(1)), 10.0, 1e-4) and close(float(truth.group(1)), 10.0, 1e-4)
    progress = result.err.splitlines()
    assert progress[0].startswith("period 1/2 [") and progress[0].endswith("30 s left")
    assert any(line.startswith("period 2/2 [") for line in progress) and len(progress) == 8
    quiet = cli(capsys, "period", "--sim", "UI1", *VIRTUAL, "--load", "constant:600", "--every", "5", "--no-progress")
    assert quiet.code == 0 and quiet.err == ""


def test_period_follows_a_household_with_solar_export(capsys):
    session = session_of("UI2@1.3", "household:3:11")
    result = cli(capsys, "period", "--every", "60", "--count", "5", "--json", session=session)
    assert result.code == 0, result.err
    summary = result.records()[-1]["summary"]
    assert summary["total_wh"][0] > 0 and summary["total_wh"][1] == 0.0  # ch1 exports at 11 h
    assert close(summary["total_wh"][0], summary["sim_truth_wh"][0], 2e-3)
    assert session.sim_modules[0].truth.export_wh(1) > 0


def test_watch_integrates_import_and_export_at_5_hz(capsys):
    session = session_of("UI2@1.3", "constant:1000,-300")
    result = cli(capsys, "watch", "--count", "25", "--json", session=session)
    assert result.code == 0, result.err
    records = result.records()
    samples = records[:-1]
    assert len(samples) == 25
    assert [round(s["t_s"], 1) for s in samples[:3]] == [0.2, 0.4, 0.6]
    assert all(s["power"] == [1000.0, -300.0] for s in samples)
    summary = records[-1]["summary"]
    assert summary["samples"] == 25 and abs(summary["seconds"] - 5.0) < 0.01
    assert close(summary["import_wh"][0], 1000 * 5 / 3600, 2e-3) and summary["import_wh"][1] == 0.0
    assert close(summary["export_wh"][1], 300 * 5 / 3600, 2e-3) and summary["export_wh"][0] == 0.0
    assert close(summary["import_wh"][0], summary["sim_truth_import_wh"][0], 2e-3)
    assert close(summary["export_wh"][1], summary["sim_truth_export_wh"][1], 2e-3)


def test_watch_duration_and_text(capsys):
    result = cli(capsys, "watch", "--sim", "UI1@1.2", *VIRTUAL, "--load", "constant:360", "--duration", "2")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert len(lines) == 10 + 2  # v1.2 reads byte by byte: each 5 Hz sample spends ~0.1 s on the bus
    last_t = float(lines[-3].split()[0])
    assert 2.0 <= last_t < 2.2
    found = re.search(r"10 samples over [0-9.]+ s: import ([0-9.]+) Wh", result.out)
    truth = re.search(r"simulator truth: import ([0-9.]+) Wh", result.out)
    assert close(float(found.group(1)), 0.2, 1e-3) and close(float(truth.group(1)), 0.2, 1e-3)


def test_watch_on_a_virtual_clock_needs_an_end(capsys):
    assert_one_line_error(cli(capsys, "watch", "--sim", "UI2", *VIRTUAL), 2, "--count or --duration")


def test_fleet_latches_every_module_and_sums_them(capsys):
    for general_call in (False, True):
        session = build([sim_specs("UI2@1.3,UI1@1.2")], load_spec("constant:1000,-300"), 100000, "virtual")
        argv = ["fleet", "--every", "30", "--count", "2", "--json"] + (["--general-call"] if general_call else [])
        result = cli(capsys, *argv, session=session)
        assert result.code == 0, result.err
        rounds = result.records()
        assert [r["latch"] for r in rounds] == [1, 2]
        for r in rounds:
            assert sorted(r["modules"]) == ["0x50", "0x51"] and r["general_call"] is general_call
            assert abs(r["total_power_w"] - 1700.0) < 0.1
            assert close(r["modules"]["0x50"]["avg_p"][0], 1000.0, 1e-4) and r["modules"]["0x50"]["avg_p"][1] == 0
        last = rounds[-1]
        assert close(last["total_energy_wh"], last["sim_truth_energy_wh"], 1e-2)
        assert close(last["total_energy_wh"], 2 * 1000 * 60 / 3600, 1e-2)
    text = cli(capsys, "fleet", "--sim", "UI2,UI1", *VIRTUAL, "--load", "constant:500", "--every", "3")
    assert text.code == 0 and "fleet: 0x50 UI2, 0x51 UI1" in text.out and "power now 1000.0 W" in text.out


def test_fleet_total_and_the_truth_count_from_the_same_latch(capsys):
    # The truth was taken after the scan and after each read, the energy counted from each
    # module's own first latch: a constant 0.2 Wh apart at 4 kW. Both now count from the
    # fleet's first latch; on window edges (10 s periods) they agree to float32 rounding.
    for general_call in (False, True):
        session = session_of("UI2@1.3,UI1@1.2,UI3@1.3", "household:1:7")
        argv = ["fleet", "--every", "10", "--count", "4", "--json"] + (["--general-call"] if general_call else [])
        result = cli(capsys, *argv, session=session)
        assert result.code == 0, result.err
        for r in result.records():
            assert r["total_energy_wh"] > 10 * r["latch"]  # several kW: a window is about 0.2 Wh
            assert abs(r["total_energy_wh"] - r["sim_truth_energy_wh"]) < 0.005, r
            for entry in r["modules"].values():
                assert abs(sum(entry["total_wh"]) - sum(entry["sim_truth_wh"])) < 0.003, r


class InterruptingClock(VirtualClock):
    """A virtual clock whose sleeper gets Ctrl-C once ``after_ms`` of virtual time have passed."""

    def __init__(self, after_ms):
        VirtualClock.__init__(self)
        self.after_us = after_ms * 1000

    def sleep_ms(self, ms):
        if self.now_us() >= self.after_us:
            raise KeyboardInterrupt
        VirtualClock.sleep_ms(self, ms)


def interrupted_session(after_ms):
    clock = InterruptingClock(after_ms)
    module = SimModule(variant="UI2", version=0x04, clock=clock, load=loads.Constant([720.0, -360.0]))
    clock.advance_ms(250)
    return Session(SimSMBus([module], freq=100000, clock=clock), clock, "interrupting", 100000, [module])


def test_ctrl_c_ends_watch_with_a_summary_and_interrupts_period(capsys):
    result = cli(capsys, "watch", session=interrupted_session(3000))
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    samples = int(lines[-2].split()[0])
    assert len(lines) == samples + 2 and 13 <= samples <= 14
    found = re.search(r"over ([0-9.]+) s: import ([0-9.]+), [0-9.]+ Wh, export [0-9.]+, ([0-9.]+) Wh", lines[-2])
    seconds = float(found.group(1))
    assert close(float(found.group(2)), 720 * seconds / 3600, 1e-3)
    assert close(float(found.group(3)), 360 * seconds / 3600, 1e-3)
    truth = re.search(r"simulator truth: import ([0-9.]+),", lines[-1])
    assert close(float(found.group(2)), float(truth.group(1)), 1e-3)
    # Ctrl-C in the third of four periods: the two latched ones make the summary, exit code 130
    stopped = cli(capsys, "period", "--every", "60", "--count", "4", session=interrupted_session(150000))
    assert stopped.code == 130 and stopped.err == "", stopped.err
    lines = stopped.out.splitlines()
    assert [line.split()[1] for line in lines[:2]] == ["1/4", "2/4"] and len(lines) == 4
    found = re.search(r"^interrupted after 2 of 4: 2 period\(s\), 0 stale: consumption ([0-9.]+), 0.0000 Wh$", lines[2])
    assert found and close(float(found.group(1)), 720 * 120 / 3600, 1e-3), lines[2]
    truth = re.search(r"^simulator truth: consumption ([0-9.]+), 0.0000 Wh$", lines[3])
    assert close(float(truth.group(1)), float(found.group(1)), 1e-3)  # up to the last latch, not to Ctrl-C
    as_json = cli(capsys, "period", "--every", "60", "--count", "4", "--json", session=interrupted_session(150000))
    summary = as_json.records()[-1]["summary"]
    assert as_json.code == 130 and summary["interrupted"] is True and (summary["periods"], summary["of"]) == (2, 4)
    early = cli(capsys, "period", "--every", "60", "--count", "2", session=interrupted_session(30000))
    assert early.code == 130 and early.out.startswith("interrupted after 0 of 2: 0 period(s)")
