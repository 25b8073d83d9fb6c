"""The gateway's main.py with timestamps for tools/bench_gateway.py (MicroPython, host profile).

It wraps three methods before the gateway starts and prints one line to stdout (the gateway log)
at each call, with the wall clock in ns (``time.time_ns()``, the same clock the benchmark's MQTT
subscriber reads on this PC):

    bench-probe latch <ns>            the simulated module executes LATCH_PERIOD (on the bus)
    bench-probe period <ns> <seq>     the gateway hands period record <seq> to its MQTT link
    bench-probe state <ns> <samples>  the gateway builds a state payload (its newest sample) that
                                      it then hands to its MQTT link

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
import gateway.mqtt_link as _link  # noqa: E402
import rbampsim.module as _sim  # noqa: E402

# When state_payload() last built a payload: the publisher hands its payload to the link right
# after building it (no await between), so the stamp printed at publish_state() is that payload's;
# payloads the web page builds are never printed (they never reach the subscriber).
_built_at = [0]


def _install():
    sim_latch = _sim.SimModule._latch
    on_period = _app.Gateway._on_period
    state_payload = _app.Gateway.state_payload
    publish_state = _link.MqttLink.publish_state

    def latch(module, now_us):
        print("bench-probe latch", time.time_ns())
        return sim_latch(module, now_us)

    def period(gateway, record):
        print("bench-probe period", time.time_ns(), record["seq"])
        return on_period(gateway, record)

    def state(gateway):
        at = time.time_ns()
        payload = state_payload(gateway)
        _built_at[0] = at
        return payload

    def publish(link, payload):
        print("bench-probe state", _built_at[0], payload["samples"])
        return publish_state(link, payload)

    _sim.SimModule._latch = latch
    _app.Gateway._on_period = period
    _app.Gateway.state_payload = state
    _link.MqttLink.publish_state = publish


gc.collect()
_before = gc.mem_alloc()
_install()
gc.collect()
print("bench-probe hooks", gc.mem_alloc() - _before)
_app.main()
