"""rbAmp on a Linux SBC (Raspberry Pi...): identity, one RT snapshot, then metered periods.

    pip install "rbamp[smbus]"
    python cpython_quickstart.py --bus 1 --addr 0x50 --period 60 --count 5
"""


def run(bus, addr=0x50, period_s=60, count=5, out=print):
    from rbamp import RbAmp, RbAmpStaleError

    with RbAmp(bus, addr) as dev:
        out("rbAmp %s at 0x%02X, protocol v1.%d, %d channel(s), label %r" % (
            dev.variant, dev.address, dev.version - 1, dev.channels, dev.read_label()))
        snap = dev.read_all()
        out("U=%.1f V  P=%s W  PF=%s" % (snap.voltage, ["%.1f" % p for p in snap.power.list()],
                                          ["%.2f" % pf for pf in snap.power_factor.list()]))
        for _ in range(count):
            dev.clock.sleep_ms(period_s * 1000 - 50)
            try:
                p = dev.read_period_snapshot()
            except RbAmpStaleError:
                out("stale period (module had no fresh data); energy is still exact")
                continue
            out("avg P=%s W over %d ms, energy %s Wh" % (
                ["%.1f" % w for w in p.avg_p.list()], p.dt_ms,
                ["%.4f" % dev.energy.wh(ch) for ch in range(dev.channels)]))
        return dev


def main():
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bus", type=int, default=1)
    parser.add_argument("--addr", type=lambda s: int(s, 0), default=0x50)
    parser.add_argument("--period", type=int, default=60)
    parser.add_argument("--count", type=int, default=5)
    args = parser.parse_args()
    from smbus2 import SMBus

    with SMBus(args.bus) as bus:
        run(bus, args.addr, args.period, args.count)


if __name__ == "__main__":
    main()
