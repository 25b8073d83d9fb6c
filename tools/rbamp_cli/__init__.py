"""rbamp_cli: the host command line ``rbamp`` for rbAmp modules on a Linux I2C bus or the simulator.

Host-only (CPython): it uses the driver ``rbamp`` unchanged, the simulator ``rbampsim`` for
``--sim``, and the gateway's own journal reader and config validation. ``rbamp --help`` lists the
commands; ``main(argv)`` runs one and returns its exit code (0 ok, 1 runtime error, 2 usage).
"""

from rbamp_cli.cli import main

__all__ = ["main"]
