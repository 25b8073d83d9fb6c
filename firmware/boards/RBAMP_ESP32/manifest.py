# The ESP32 image: the port's stock modules (manifest.py's default port part) and the gateway.
include("../../../manifest.py", opt=3)
# main.py of the image: starts the gateway unless the filesystem has a main.py of its own.
freeze("../../frozen", "main.py", opt=3)
