# Frozen-module manifest for the gateway firmware images (MicroPython manifest conventions).
# Build: make -C ports/<port> BOARD=<board> FROZEN_MANIFEST=<this file>  (see firmware/README.md)
# The port's own manifest keeps asyncio, network helpers and the rest of the stock image.
include("$(PORT_DIR)/boards/manifest.py")

require("umqtt.simple")

# The driver and the application, compiled at freeze time (asserts removed at opt=3: the code
# never relies on them).
package("rbamp", base_path="lib", opt=3)
package("gateway", base_path="lib", opt=3)
