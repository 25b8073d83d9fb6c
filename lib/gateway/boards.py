"""Board profiles: where the hardware is. Library code never creates hardware objects itself.

A profile answers: which I2C bus and pins (50 kHz by default), the DRDY pin and how its IRQ is
armed, where the energy journal lives (a dedicated flash partition in our images, a file on the
board's filesystem on stock firmware), where config.json and the backlog are, how the network
comes up, and how to reset. ``detect()`` picks the profile from ``sys.platform``; the base class
all of them share is ``gateway.board_profile.Board``.

    from gateway.boards import detect

    board = detect()            # Esp32Board, Rp2Board, or on a PC tools/hostboard.py's HostBoard
    bus = board.i2c(cfg)

The flash layouts match ``firmware/boards``: ESP32 images carry a data partition labelled
``energy`` (16 x 4 KiB); Pico W images reserve the 64 KiB right before the filesystem (the first
64 KiB of MicroPython's flash storage region, whose rest the image's ``_boot.py`` mounts) for the
journal; such an image freezes a ``board_layout`` module naming that region, and only then is
``rp2.Flash(start=, len=)`` used. On stock firmware the same offsets would land inside the
filesystem, so there the journal is a file.
"""

import sys

# The journal's geometry is named here for the code that reads journals (rbamp journal, the
# firmware layout checks); the base profile that uses it lives in gateway.board_profile.
from gateway.board_profile import JOURNAL_BLOCK_SIZE, JOURNAL_BLOCKS, Board  # noqa: F401

ESP32_PARTITION_LABEL = "energy"


class Esp32Board(Board):
    name = "esp32"

    def journal_device(self):
        try:
            import esp32  # pyright: ignore[reportMissingImports]  # ESP32 firmware only

            found = esp32.Partition.find(esp32.Partition.TYPE_DATA, label=ESP32_PARTITION_LABEL)
        except (ImportError, AttributeError):
            found = []
        if found:
            return found[0]
        return Board.journal_device(self)  # stock firmware: no energy partition, use a file


class Rp2Board(Board):
    name = "rp2"

    def _scan_refused(self, wlan, exc):
        # The CYW43 driver answers a scan with EPERM when the chip did not start (active(True)
        # fails silently); anything that would start it again (a disconnect, the access point)
        # can block the CPU until the watchdog resets the board, as seen on the emulated chip.
        self.radio_failed = True
        raise OSError("the Wi-Fi chip did not start (the scan got %s)" % exc)

    def journal_device(self):
        try:
            import board_layout  # pyright: ignore[reportMissingImports]  # frozen into our Pico W image only
        except ImportError:
            return Board.journal_device(self)
        import rp2  # pyright: ignore[reportMissingImports]  # Pico W firmware only

        return rp2.Flash(start=board_layout.JOURNAL_START, len=board_layout.JOURNAL_LEN)

    def watchdog(self, timeout_ms):
        from machine import WDT

        return WDT(timeout=min(timeout_ms, 8300))  # the RP2040 watchdog maxes out at ~8.3 s


def detect():
    """The profile of the board this runs on: ESP32 and Pico W by ``sys.platform``; any other
    platform is a PC, whose profile comes from the module ``hostboard``, which only a PC provides
    (``tools/`` on its path, or frozen into the unix build as firmware/host_manifest.py does),
    as only our Pico W image provides ``board_layout``."""
    platform = sys.platform
    if platform == "esp32":
        return Esp32Board()
    if platform == "rp2":
        return Rp2Board()
    try:
        import hostboard  # pyright: ignore[reportMissingImports]  # tools/hostboard.py: on a PC only
    except ImportError as exc:
        raise ImportError("no board profile for platform %r: gateway.boards knows esp32 and rp2, and the PC "
                          "profile (module hostboard, tools/hostboard.py) is not on the path: put the "
                          "repository's tools/ on it, as make run does (%s)" % (platform, exc))
    return hostboard.HostBoard()
