"""Energy metered by our image on the emulated Pico W, against the simulated module's exact
ground truth: minutes of emulated time at a constant load, the gateway stopped with Ctrl-C (an
orderly stop commits), then the journal read from the flash dump with the gateway's own store.
"""

import support_picow as picow
from test_picow_boot import CONFIG, SIM, UP, gateway_files

RUN_S = 120
IMPORT_W = 1000.0  # SIM: channel 0 imports 1000 W, channel 1 exports 300 W
EXPORT_W = 300.0


def test_energy_matches_the_module_truth(tmp_path):
    result = picow.run(tmp_path, files=gateway_files(), sims=[SIM], timeout_s=RUN_S + 30,
                       steps=[{"wait": UP}, {"run_s": RUN_S}, {"send": "\x03"}, {"wait": ">>> "}])
    assert result.exit == 0, result.explain()
    assert "Traceback" not in result.console and "fatal error" not in result.console, result.explain()
    assert result.reboots == 0

    state = result.journal_state()
    assert state is not None, "no journal record in the flash dump"
    totals_mwh = state.totals  # [ch0 import, ch0 export, ch1 import, ch1 export]
    truth = result.truth["modules"][0]
    truth_import_mwh = truth["import_wh"][0] * 1000
    truth_export_mwh = truth["export_wh"][1] * 1000

    # The gateway meters from its first reading to Ctrl-C; the truth counts from the module's
    # power-on to the end of the run. Between them: the boot (under a second) and the stop.
    period_s = CONFIG["period_s"]
    slack_s = period_s + 2
    assert totals_mwh[1] == 0 and totals_mwh[2] == 0
    assert 0 <= truth_import_mwh - totals_mwh[0] <= IMPORT_W * slack_s / 3.6, (totals_mwh, truth)
    assert 0 <= truth_export_mwh - totals_mwh[3] <= EXPORT_W * slack_s / 3.6, (totals_mwh, truth)
    assert truth_import_mwh >= IMPORT_W * RUN_S / 3.6  # the run really lasted RUN_S emulated seconds

    print("after %.0f s emulated (%.1f s wall): journal %.3f / %.3f Wh, truth %.3f / %.3f Wh" % (
        result.emulated_s, result.wall_s, totals_mwh[0] / 1000, totals_mwh[3] / 1000,
        truth["import_wh"][0], truth["export_wh"][1]))
