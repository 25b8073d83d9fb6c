// rbAmp gateway on a Raspberry Pi Pico W: RPI_PICO_W's configuration with our name.
#include "boards/RPI_PICO_W/mpconfigboard.h"

#undef MICROPY_HW_BOARD_NAME
#define MICROPY_HW_BOARD_NAME "rbAmp gateway (Pico W)"

// MicroPython's flash storage region: the last 848 KiB of the 2 MiB flash, as on RPI_PICO_W
// (the firmware keeps its 1200 KiB). Stated here because board_layout.py splits this region
// into the energy journal (first 64 KiB) and the filesystem (the rest); rp2.Flash(start=, len=)
// addresses offsets within it. tests/test_firmware_layout.py checks the two agree.
#undef MICROPY_HW_FLASH_STORAGE_BYTES
#define MICROPY_HW_FLASH_STORAGE_BYTES (848 * 1024)
