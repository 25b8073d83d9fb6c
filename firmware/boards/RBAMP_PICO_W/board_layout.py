"""Flash layout of the rbAmp Pico W image; frozen, imported by _boot.py and gateway.boards.

Offsets are within MicroPython's flash storage region (MICROPY_HW_FLASH_STORAGE_BYTES in
mpconfigboard.h, at the end of the 2 MiB flash), which is what ``rp2.Flash(start=, len=)``
addresses. The energy journal takes the first 64 KiB of the region, right after the firmware;
the filesystem mounted by _boot.py takes the rest.
"""

STORAGE_LEN = 848 * 1024  # MICROPY_HW_FLASH_STORAGE_BYTES
ERASE_BLOCK = 4096  # the RP2040 flash sector; rp2.Flash offsets must be multiples of it
JOURNAL_START = 0
JOURNAL_LEN = 16 * ERASE_BLOCK  # gateway.boards.JOURNAL_BLOCKS x JOURNAL_BLOCK_SIZE
FS_START = JOURNAL_START + JOURNAL_LEN
FS_LEN = STORAGE_LEN - FS_START
