// rbAmp gateway on a generic ESP32 module (ESP32_GENERIC with the energy partition).
#define MICROPY_HW_BOARD_NAME "rbAmp gateway (ESP32)"
#define MICROPY_HW_MCU_NAME "ESP32"
