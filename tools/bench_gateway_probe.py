"""The gateway's main.py with timestamps for tools/bench_gateway.py (MicroPython, host profile).

It wraps three methods before the gateway starts and prints one line to stdout (the gateway log)
at each call, with the wall clock in ns (``time.time_ns()``, the same clock the benchmark's MQTT
subscriber reads on this PC):

    bench-probe latch <ns>            the simulated module executes LATCH_PERIOD (on the bus)
    bench-probe period <ns> <seq>     the gateway hands period record <seq> to its MQTT link
    bench-probe state <ns> <samples>  the gateway builds a state payload (its newest sample)

and, before the gateway starts, what the probe itself keeps on the heap, so the benchmark can
tell it apart from the gateway's steady-state heap: ``bench-probe base <bytes>`` (the heap in use
once this script is compiled; the benchmark subtracts the bare interpreter's) and
``bench-probe hooks <bytes>`` (the wrappers).
"""

import gc
import sys

# This script's folder (tools/) comes first on sys.path: the simulator would load from its .py
# sources there instead of the frozen build, like main.py gets it (~18 KB more heap).
if sys.path and sys.path[0] == __file__.rsplit("/", 1)[0]:
    sys.path.pop(0)
gc.collect()
print("bench-probe base", gc.mem_alloc())

import time  # noqa: E402

import gateway.app as _app  # noqa: E402
import rbampsim.module as _sim  # noqa: E402


def _install():
    sim_latch = _sim.SimModule._latch
    on_period = _app.Gateway._on_period
    state_payload = _app.Gateway.state_payload

    def latch(module, now_us):
        print("bench-probe latch", time.time_ns())
        return sim_latch(module, now_us)

    def period(gateway, record):
        print("bench-probe period", time.time_ns(), record["seq"])
        return on_period(gateway, record)

    def state(gateway):
        at = time.time_ns()
        payload = state_payload(gateway)
        print("bench-probe state", at, payload["samples"])
        return payload

    _sim.SimModule._latch = latch
    _app.Gateway._on_period = period
    _app.Gateway.state_payload = state


gc.collect()
_before = gc.mem_alloc()
_install()
gc.collect()
print("bench-probe hooks", gc.mem_alloc() - _before)
_app.main()
