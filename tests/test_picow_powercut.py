"""Power cuts on the emulated Pico W at random flash operations of our image, between operations
and in the middle of an erase or a page program, each followed by a cold boot with that flash.

The journal must load after every cut (the last or the in-flight commit) and never go backwards,
every boot after a cut must bring the gateway up again without a journal error, and the final
totals never exceed what the simulated module measured.
"""

import os
import random

import support_picow as picow
from test_picow_boot import SIM, UP, gateway_files

CUTS = int(os.environ.get("PICOW_CUTS", "50"))
BOOT_WINDOW_S = 12  # each boot after a cut runs at most about this long before its own cut
SEED = 13


def _ops_in_first_seconds(tmp, flash, seconds):
    """Flash operations a boot of this flash makes in its first ``seconds`` (runs are
    deterministic, so a cut at any of them is reached)."""
    probe = picow.run(tmp, flash=flash, image=False, sims=[SIM], timeout_s=seconds + 5,
                      steps=[{"run_s": seconds}])
    assert probe.exit == 0, probe.explain()
    assert UP in probe.console, probe.explain()
    return probe.boots[0]["flash_ops"]


def test_power_cuts_never_lose_or_rewind_the_journal(tmp_path):
    # A board that has metered for a while: a journal with records, littlefs with its files.
    setup = picow.run(tmp_path / "setup", files=gateway_files(), sims=[SIM], timeout_s=60,
                      steps=[{"wait": UP}, {"run_s": 20}])
    assert setup.exit == 0, setup.explain()
    before = setup.journal_state()
    assert before is not None
    ops = _ops_in_first_seconds(tmp_path / "probe", setup.flash, BOOT_WINDOW_S)
    assert ops >= 3, "too few flash operations to cut at (%d)" % ops

    rng = random.Random(SEED)
    cuts = []
    for k in range(CUTS):
        at = rng.randint(1, ops)
        # every third cut between operations (the op completes, the next never starts), every
        # third before it lands at all, the others inside it
        kind = k % 3
        fraction = 1.0 if kind == 0 else 0.0 if kind == 1 else round(rng.uniform(0.05, 0.95), 3)
        cuts.append((at, fraction))
    result = picow.run(tmp_path / "cuts", flash=setup.flash, image=False, sims=[SIM], cuts=cuts, cut_dump=True,
                       timeout_s=CUTS * (BOOT_WINDOW_S + 5) + 60, until=UP)
    assert result.exit == 0, result.explain()
    assert len(result.cuts) == CUTS

    previous = list(before.totals)
    for index, cut in enumerate(result.cuts):
        state = picow.journal_state(picow.read_dump(cut["dump"])[picow.JOURNAL_START:][:picow.JOURNAL_LEN])
        assert state is not None, "cut %d (%r): the journal does not load" % (index + 1, cut)
        assert all(now >= then for now, then in zip(state.totals, previous)), \
            "cut %d (%r): totals went back from %r to %r" % (index + 1, cut, previous, state.totals)
        previous = list(state.totals)
    for number, boot in enumerate(result.boots, 1):
        console = boot["console"]
        for bad in ("energy journal unavailable", "fatal error", "Traceback", "foreign data"):
            assert bad not in console, "boot %d: %r\n%s" % (number, bad, console[-3000:])
    # the boot after the last cut is up (the run waited for it) with a journal at least as high
    final = result.journal_state()
    assert all(now >= then for now, then in zip(final.totals, previous))
    truth = result.truth["modules"][0]
    assert final.totals[0] <= truth["import_wh"][0] * 1000 + 1
    assert final.totals[3] <= truth["export_wh"][1] * 1000 + 1

    kinds = {}
    for cut in result.cuts:
        kinds[cut["kind"]] = kinds.get(cut["kind"], 0) + 1
    print("%d cuts (%s) over %.0f s emulated in %.1f s wall: %.2f s wall per cut; journal %.3f Wh of %.3f Wh "
          "measured" % (CUTS, kinds, result.emulated_s, result.wall_s, result.wall_s / CUTS,
                        final.totals[0] / 1000, truth["import_wh"][0]))
