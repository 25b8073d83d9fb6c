"""Survival benchmark: the energy a gateway restart loses, the energy a power cut of mains and
gateway together loses with and without the mains-loss commit, and the time from a visible mains
collapse to the durable commit.

usage: python tools/bench_survival.py [--write] [--trials N] [--mpy32 PATH]
       micropython tools/bench_survival.py --run N DATA_DIR        (prints one JSON line)

What runs, under the 32-bit single-float MicroPython (what the boards do), on virtual time: the
whole gateway (``Gateway.run``, tools/gateway_rig.py) with a simulated UI1 v1.3 module and the
journal on the NOR flash model. A crash is the gateway's task cancelled: nothing is committed on
the way out, exactly what a SIGKILL, a watchdog reset or a power cut leaves (the end-to-end tests
do the same with real SIGKILLs: tests/test_gateway_survival.py).

- Restart: 3 kW; a gateway runs two periods (period_s 60) and dies at a random phase of the third;
  the next one runs until the load has stopped and every window was latched. Lost = ground truth
  minus the journal, per restart.
- Power cut: 2 kW; the mains collapse at a random phase; the gateway's supply holds 50 ms after
  the first RT window that shows the collapse is committed by the module (the collapse is
  "visible"), then the gateway dies and the module stays unpowered for 30 s. With the mains-loss
  commit (``mains_loss.voltage_v`` 150) and without it (0).
- Collapse to durable: the virtual time from the DRDY wake-up whose sample shows the collapse to
  the returned commit (the simulated bus's time of that sample, at 50 kHz); and the CPU time, on
  the unix port, of what runs between the sample and the durable commit (the provisional import,
  the commit on the NOR model).
"""

import sys

_HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
if __name__ == "__main__":
    for _path in (_HERE + "/../lib", _HERE):
        if _path not in sys.path:
            sys.path.append(_path)

RESTART_W = 3000.0
CUT_W = 2000.0
PERIOD_S = 60
HOLD_UP_MS = 50


def _window_wh(watts):
    return watts * 0.2 / 3600


def _restart_trial(data_dir, phase_s):
    from gateway_rig import Rig, boot, config, journal
    from rbampsim import loads

    crash_s = 2 * PERIOD_S + 5 + phase_s
    stop_s = crash_s + 90
    load = loads.Schedule([(0, [0.0]), (5, [RESTART_W]), (stop_s, [0.0])])
    rig = Rig(data_dir, [("UI1", 0x04, 0x50, load)])
    cfg = config([{"address": 0x50}], period_s=PERIOD_S)
    boot(rig, cfg, crash_s - rig.clock.now_s())
    boot(rig, cfg, stop_s + 2.5 * PERIOD_S - rig.clock.now_s())
    return rig.sim(0x50).truth.import_wh(0) - journal(rig).totals[0] / 1000


def _cut_trial(data_dir, phase_s, threshold_v, cpu_us):
    import time

    from gateway_rig import MainsCollapse, Rig, boot, config, journal
    from rbampsim import loads

    load = MainsCollapse(loads.Schedule([(0, [0.0]), (5, [CUT_W])]))
    rig = Rig(data_dir, [("UI1", 0x04, 0x50, load)])
    sim = rig.sim(0x50)
    cfg = config([{"address": 0x50}], period_s=PERIOD_S, mains_loss={"voltage_v": threshold_v})
    seen = {}

    async def during(gateway):
        metering = gateway.metering
        plain = metering.mains_lost

        def timed(why):
            start = time.ticks_us()
            plain(why)
            cpu_us.append(time.ticks_diff(time.ticks_us(), start))

        metering.mains_lost = timed
        await rig.clock.asleep_ms(int((2 * PERIOD_S + 5 + phase_s) * 1000))
        load.collapse(rig.clock.now_us())
        sim.sync()
        # the next window is the first to carry the collapse; the module commits it 200 ms later
        visible_us = sim._next_window_us + 200000
        await rig.clock.asleep_ms((visible_us - rig.clock.now_us()) // 1000 + HOLD_UP_MS)
        seen["commit_us"] = metering.last_mains_commit_us

    boot(rig, cfg, 0, during)
    sim.unplug()
    rig.clock.advance_ms(30000)
    load.restore(rig.clock.now_us())
    sim.plug()
    boot(rig, cfg, 2 * PERIOD_S + 10)
    load.collapse(rig.clock.now_us())  # no more energy: everything the module saw gets latched
    boot(rig, cfg, PERIOD_S + 1)
    return sim.truth.import_wh(0) - journal(rig).totals[0] / 1000, seen["commit_us"]


def run(trials, data_dir):
    """The measurement itself (MicroPython): one JSON line."""
    import json

    from rbampsim.loads import Prng

    rng = Prng(2026)
    restart = []
    for _ in range(trials):
        restart.append(_restart_trial(data_dir, rng.uniform() * PERIOD_S))
    with_commit, without, commit_us, cpu_us = [], [], [], []
    for _ in range(trials):
        phase = rng.uniform() * PERIOD_S
        lost, took = _cut_trial(data_dir, phase, 150, cpu_us)
        with_commit.append(lost)
        commit_us.append(took)
        lost, took = _cut_trial(data_dir, phase, 0, [])
        without.append(lost)
    print(json.dumps({"restart_wh": restart, "cut_with_wh": with_commit, "cut_without_wh": without,
                      "commit_virtual_us": commit_us, "commit_cpu_us": cpu_us,
                      "platform": sys.platform, "float_bits": 32 if 1e30 * 1e10 == float("inf") else 64}))


# ---------------------------------------------------------------------- host side (CPython)
def _stats(values):
    ordered = sorted(values)
    return {"mean": sum(values) / len(values), "min": ordered[0], "max": ordered[-1],
            "median": ordered[len(ordered) // 2]}


def measure(mpy32, trials):
    import json
    import os
    import subprocess
    import tempfile

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["MICROPYPATH"] = os.pathsep.join([".frozen", os.path.join(repo, "lib"), os.path.join(repo, "tools")])
    with tempfile.TemporaryDirectory() as data_dir:
        done = subprocess.run([mpy32, os.path.abspath(__file__), "--run", str(trials), data_dir],
                              capture_output=True, text=True, env=env, cwd=repo)
    if done.returncode != 0:
        raise SystemExit("bench_survival: the measurement failed:\n" + done.stdout + done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(result):
    trials = len(result["restart_wh"])
    restart = _stats([abs(x) for x in result["restart_wh"]])
    with_commit = _stats(result["cut_with_wh"])
    without = _stats(result["cut_without_wh"])
    virtual = _stats(result["commit_virtual_us"])
    cpu = _stats(result["commit_cpu_us"])
    lines = [
        "Measured by `make bench-survival` (tools/bench_survival.py) on mpy32 (MicroPython 1.25 unix "
        "port, 32-bit, single-precision floats): the whole gateway (`Gateway.run`) on virtual time, "
        "a simulated UI1 v1.3 module, the journal on the NOR flash model, period_s 60, %d trials "
        "each at random phases. A crash cancels the gateway: nothing is committed on the way out "
        "(the end-to-end tests do real SIGKILLs: tests/test_gateway_survival.py)." % trials,
        "",
        "| event | load | energy lost per event (Wh) | in 200 ms windows |",
        "|---|---|---|---|",
        "| gateway restart, module keeps running (`begin(resume=)`) | 3 kW | %.4f mean, %.4f max (absolute) "
        "| %.2f mean, %.2f max |" % (restart["mean"], restart["max"], restart["mean"] / _window_wh(RESTART_W),
                                     restart["max"] / _window_wh(RESTART_W)),
        "| power cut of mains and gateway, with the mains-loss commit | 2 kW | %.4f mean, %.4f .. %.4f "
        "| %.2f max |" % (with_commit["mean"], with_commit["min"], with_commit["max"],
                          max(abs(with_commit["min"]), abs(with_commit["max"])) / _window_wh(CUT_W)),
        "| the same power cut without it (`mains_loss.voltage_v: 0`) | 2 kW | %.2f mean, %.2f .. %.2f "
        "| %.0f mean |" % (without["mean"], without["min"], without["max"], without["mean"] / _window_wh(CUT_W)),
        "",
        "A restart counts what the module still holds (the period it latched and the one open) as "
        "commit count x the learned window length; each restart is off by less than one window "
        "either way (the window in progress at the old and at the new latch). Without the "
        "mains-loss commit a power cut loses the module's open period (up to period_s of energy) "
        "and what was counted since the last commit; with it, the supply has to hold up %d ms after "
        "the collapse is visible: the gateway's own 5 Hz samples stand in for the period the module "
        "could not latch." % HOLD_UP_MS,
        "",
        "Collapse to durable commit: %.1f ms (median; %.1f max) of virtual time from the DRDY wake-up "
        "whose sample shows the collapse to the returned commit: that is the sample's bus time at "
        "50 kHz (one 56-byte v1.3 burst, 10.8 ms). CPU from that sample to the durable commit "
        "(provisional import, journal record programmed, synced, read back) on mpy32 on this PC: "
        "%d us median, %d us max. On the RP2040 the CPU part is slower (see the RP2040 section when "
        "it has the journal commit figure) and a 256-byte page program adds about 1 ms (W25Q16 "
        "datasheet: 0.7 ms typical, 3 ms max), which stays within the 50 ms a supply must hold up; "
        "a v1.2 module's sample takes longer (21 ms for a UI1 single pass after DRDY)." % (
            virtual["median"] / 1000, virtual["max"] / 1000, cpu["median"], cpu["max"]),
    ]
    return "\n".join(lines)


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--run":
        run(int(sys.argv[2]), sys.argv[3])
        return
    import argparse
    import os

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="replace the survival section of BENCHMARKS.md")
    parser.add_argument("--trials", type=int, default=20, help="trials per scenario (default 20)")
    parser.add_argument("--mpy32", default=os.environ.get("XRT_MPY32") or ".cache/mpy32/micropython-32-plain",
                        help="the 32-bit MicroPython interpreter")
    args = parser.parse_args()
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    if not os.path.exists(args.mpy32):
        parser.error("no 32-bit MicroPython at %s (make mpy32 builds it)" % args.mpy32)
    text = report(measure(args.mpy32, args.trials))
    print(text)
    if args.write:
        from benchreport import replace_section

        replace_section("survival", text)


if __name__ == "__main__":
    main()
