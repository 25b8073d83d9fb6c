# The unix-port variant of manifest.py, for running the gateway as a board runs it (frozen
# bytecode in ROM, not on the heap): asyncio from the MicroPython source in place of a port's
# stock modules, umqtt.simple from .cache/umqtt (the unix build has no micropython-lib; `make
# umqtt` extracts there the file the board images freeze, checked against umqtt-simple.sha256),
# microdot from .cache/weblib as every image takes it (manifest.py's default microdot_dir, `make
# weblib`), and the PC's own parts from tools/: the host profile (gateway.boards.detect() imports it as
# `hostboard` on a PC) and the simulator it drives.
include("../manifest.py", port_manifest="$(MPY_DIR)/extmod/asyncio", umqtt_dir=".cache/umqtt", opt=3)
module("hostboard.py", base_path="../tools", opt=3)
package("rbampsim", base_path="../tools", opt=3)
