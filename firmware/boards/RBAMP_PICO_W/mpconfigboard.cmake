# rbAmp gateway on a Raspberry Pi Pico W: RPI_PICO_W's settings, its named pins, and our frozen
# manifest (which mounts the filesystem after the energy journal, see board_layout.py).
include(${MICROPY_PORT_DIR}/boards/RPI_PICO_W/mpconfigboard.cmake)

# The port only picks up pins.csv from the board's own folder; use RPI_PICO_W's (LED, WL_GPIOn).
set(GEN_PINS_CSV_ARG --board-csv "${MICROPY_PORT_DIR}/boards/RPI_PICO_W/pins.csv")

set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
