# The unix-port variant of manifest.py, for measuring the gateway as a board runs it (frozen
# bytecode in ROM, not on the heap): asyncio from the MicroPython source, umqtt.simple from the
# PyPI copy in .cache (the unix port has no require()), and the simulator for the host profile.
# Paths are relative to this file.
include("$(MPY_DIR)/extmod/asyncio")
package("umqtt", base_path="../.cache/umqtt")
package("rbamp", base_path="../lib", opt=3)
package("gateway", base_path="../lib", opt=3)
package("rbampsim", base_path="../tools", opt=3)
