# Frozen-module manifest for the gateway firmware images (MicroPython manifest conventions).
# Board manifests include this file (firmware/boards/*/manifest.py, built by `make firmware`);
# firmware/host_manifest.py includes it for the unix-port build the tests and benchmarks run.
#
# Options, passed as include("manifest.py", name=value):
#   port_manifest  the port/board part of the image (default: the port's stock boards/manifest.py,
#                  which keeps asyncio, network helpers and the rest of the stock image)
#   umqtt_dir      freeze umqtt/ from this directory (relative to this file) instead of
#                  require("umqtt.simple"): the unix build has no micropython-lib, so it freezes the
#                  copy `make umqtt` extracts from the same micropython-lib (firmware/umqtt-simple.sha256)
#   microdot_dir   freeze microdot/ (the web page's framework) from this directory (relative to this
#                  file): the four modules `make weblib` (tools/fetch_microdot.sh) extracts from the
#                  wheel pinned in firmware/microdot.sha256. No micropython-lib carries microdot, so
#                  every build takes it from there; `make firmware` fetches it first.
#   opt            mpy-cross optimisation level for our code; 3 removes asserts and line numbers
#                  (the code never relies on either)
options.defaults(port_manifest="$(PORT_DIR)/boards/manifest.py", umqtt_dir=None, microdot_dir=".cache/weblib",
                 opt=3)

include(options.port_manifest)

if options.umqtt_dir:
    package("umqtt", base_path=options.umqtt_dir)
else:
    require("umqtt.simple")

# Named one by one, so that a cache without them stops the build with this message instead of
# freezing an image without its web page (the manifest runs with its own folder as the cwd).
MICRODOT_MODULES = ("__init__.py", "microdot.py", "helpers.py", "sse.py")
for _name in MICRODOT_MODULES:
    try:
        open("%s/microdot/%s" % (options.microdot_dir, _name)).close()
    except OSError:
        raise OSError("%s/microdot/%s is missing: run `make weblib`" % (options.microdot_dir, _name))
package("microdot", files=MICRODOT_MODULES, base_path=options.microdot_dir, opt=options.opt)

# The driver through its own manifest, as any other project would require() it.
add_library("rbamp-gateway", "lib")
require("rbamp", library="rbamp-gateway", opt=options.opt)

# The application, every module of it: lib/ holds only what runs on a board (the PC's profile
# lives in tools/, tests/test_manifest.py checks that nothing under lib/ imports tools/).
package("gateway", base_path="lib", opt=options.opt)
