# MicroPython manifest for the rbamp driver alone: `require("rbamp")` from a board manifest (with
# this repository's lib/ registered through add_library()), or include() this file.
# Option: opt, the mpy-cross optimisation level (default: the build's).
metadata(description="Driver for the rbAmp I2C mains-measurement module", version="0.1.0")

options.defaults(opt=None)
package("rbamp", files=("__init__.py", "clock.py", "device.py", "drdy.py", "energy.py",
                        "errors.py", "fleet.py", "floatbits.py", "identity.py", "period.py",
                        "phase.py", "provisioning.py", "registers.py", "regio.py", "resume.py",
                        "rtread.py", "sampling.py", "snapshot.py", "stream.py", "ticks.py",
                        "transport.py"), base_path="..", opt=options.opt)
