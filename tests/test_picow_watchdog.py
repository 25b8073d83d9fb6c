"""A hung gateway on the emulated Pico W is reset by the RP2040 watchdog the gateway arms, and the
board comes back up with its flash (journal included) as it was."""

import support_picow as picow
from test_picow_boot import SIM, UP, gateway_files

# main.py on the filesystem (the image hands over to it): the real gateway, on a board profile
# whose background task blocks the event loop for good once the gateway has run for a while.
HANGING_MAIN = """
import time
from gateway import boards
from gateway.app import main


class HangingBoard(boards.Rp2Board):
    async def background(self):
        await self.clock.asleep_ms(12000)
        print("hanging the event loop at", time.ticks_ms())
        while True:
            time.sleep_ms(1000)


boards.detect = HangingBoard
main()
"""


def test_watchdog_resets_a_hung_gateway(tmp_path):
    files = gateway_files()
    files["main.py"] = HANGING_MAIN
    result = picow.run(tmp_path, files=files, sims=[SIM], timeout_s=60,
                       steps=[{"wait": UP}, {"wait": "hanging the event loop"}, {"boot": 2}, {"wait": UP}])
    assert result.exit == 0, result.explain()
    assert result.reboots == 1
    assert [boot["cause"] for boot in result.boots] == ["power-on", "watchdog"]
    first = result.boots[0]["console"]
    assert "Traceback" not in first and "fatal error" not in first, first
    hung_ms = int(first.split("hanging the event loop at")[1].split()[0])
    # the second boot's gateway read the journal the first one wrote
    assert result.journal_state() is not None
    reset_after_s = result.boots[1]["start_s"] - hung_ms / 1000
    print("watchdog reset %.2f s (emulated) after the loop hung; boots at %s s" % (
        reset_after_s, [round(boot["start_s"], 2) for boot in result.boots]))
    assert reset_after_s > 0
