# The Pico W image: RPI_PICO_W's contents with our _boot.py and board_layout (port_manifest.py),
# and the gateway.
include("../../../manifest.py", port_manifest="$(BOARD_DIR)/port_manifest.py", opt=3)
