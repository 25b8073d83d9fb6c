# The Pico W image: RPI_PICO_W's contents with our _boot.py and board_layout (port_manifest.py),
# and the gateway.
include("../../../manifest.py", port_manifest="$(BOARD_DIR)/port_manifest.py", opt=3)
# main.py of the image: starts the gateway unless the filesystem has a main.py of its own.
freeze("../../frozen", "main.py", opt=3)
