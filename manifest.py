# Frozen-module manifest for the gateway firmware images (MicroPython manifest conventions).
# Board manifests include this file (firmware/boards/*/manifest.py, built by `make firmware`);
# firmware/host_manifest.py includes it for the unix-port build the tests and benchmarks run.
#
# Options, passed as include("manifest.py", name=value):
#   port_manifest  the port/board part of the image (default: the port's stock boards/manifest.py,
#                  which keeps asyncio, network helpers and the rest of the stock image)
#   umqtt_dir      freeze umqtt/ from this directory (relative to this file) instead of
#                  require("umqtt.simple"): the unix build has no micropython-lib
#   host           also freeze the host profile (gateway/hostboard.py); unix build only
#   opt            mpy-cross optimisation level for our code; 3 removes asserts and line numbers
#                  (the code never relies on either)
options.defaults(port_manifest="$(PORT_DIR)/boards/manifest.py", umqtt_dir=None, host=False, opt=3)

include(options.port_manifest)

if options.umqtt_dir:
    package("umqtt", base_path=options.umqtt_dir)
else:
    require("umqtt.simple")

# The driver through its own manifest, as any other project would require() it.
add_library("rbamp-gateway", "lib")
require("rbamp", library="rbamp-gateway", opt=options.opt)

# Every module of the application that runs on a board; gateway/hostboard.py is host-only (it
# drives the simulator from tools/, which no board has). tests/test_manifest.py checks this list
# against lib/gateway/.
GATEWAY_BOARD_MODULES = ("__init__.py", "app.py", "backlog.py", "backoff.py", "boards.py",
                         "commit_policy.py", "config.py", "discovery.py", "flashdev.py", "layout.py",
                         "log.py", "metering.py", "mqtt_link.py", "store.py")
package("gateway", files=GATEWAY_BOARD_MODULES + (("hostboard.py",) if options.host else ()),
        base_path="lib", opt=options.opt)
