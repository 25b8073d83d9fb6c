# rbAmp gateway on a generic ESP32 module with 4 MiB flash: ESP32_GENERIC's settings, our
# partition table (with the `energy` journal partition) and our code frozen in.

# ESP-IDF resolves a relative partition CSV name against ports/esp32, where this out-of-tree
# board is not, so the fragment naming our CSV is written at configure time with its absolute path.
set(RBAMP_PARTITIONS_SDKCONFIG ${CMAKE_BINARY_DIR}/sdkconfig.rbamp_partitions)
file(WRITE ${RBAMP_PARTITIONS_SDKCONFIG}
    "CONFIG_PARTITION_TABLE_CUSTOM=y\n"
    "CONFIG_PARTITION_TABLE_CUSTOM_FILENAME=\"${MICROPY_BOARD_DIR}/partitions-rbamp-4MiB.csv\"\n")

set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    boards/sdkconfig.ble
    ${MICROPY_BOARD_DIR}/sdkconfig.board
    ${RBAMP_PARTITIONS_SDKCONFIG}
)

set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
