# The ESP32 image: the port's stock modules (manifest.py's default port part) and the gateway.
include("../../../manifest.py", opt=3)
