# The unix-port variant of manifest.py, for running the gateway as a board runs it (frozen
# bytecode in ROM, not on the heap): asyncio from the MicroPython source in place of a port's
# stock modules, umqtt.simple from the PyPI copy in .cache (the unix build has no
# micropython-lib), the host profile, and the simulator it drives.
include("../manifest.py", port_manifest="$(MPY_DIR)/extmod/asyncio", umqtt_dir=".cache/umqtt",
        host=True, opt=3)
package("rbampsim", base_path="../tools", opt=3)
