# MicroPython manifest for the rbamp driver alone: `require("rbamp")` from a board manifest, or
# `package("rbamp")` from this directory's parent.
metadata(description="Driver for the rbAmp I2C mains-measurement module", version="0.1.0")

package("rbamp", files=("__init__.py", "clock.py", "device.py", "drdy.py", "energy.py", "errors.py",
                        "fleet.py", "floatbits.py", "provisioning.py", "registers.py", "snapshot.py",
                        "stream.py", "transport.py"), base_path="..")
