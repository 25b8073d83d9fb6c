"""rbAmp on a Linux SBC (Raspberry Pi...): identity, one RT snapshot, then metered periods.

    pip install "rbamp[smbus]"
    python cpython_quickstart.py --bus 1 --addr 0x50 --period 60 --count 5

Without hardware, against the simulator (as ``rbamp --sim`` does; virtual time runs the periods
at once, real time takes --period seconds each):

    python examples/cpython_quickstart.py --sim UI2 --sim-clock virtual
"""

import sys


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


def _open_bus(number):
    try:
        from smbus2 import SMBus
    except ImportError:
        raise OSError("this needs smbus2: pip install 'rbamp[smbus]' (without hardware: --sim UI2)")
    try:
        return SMBus(number)
    except FileNotFoundError:
        raise OSError("/dev/i2c-%d does not exist: enable I2C (raspi-config on a Raspberry Pi) or pick "
                      "another --bus (without hardware: --sim UI2)" % number)


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bus", type=int, default=1, help="Linux I2C bus number (/dev/i2c-N)")
    parser.add_argument("--addr", type=lambda s: int(s, 0), default=0x50)
    parser.add_argument("--period", type=int, default=60, help="seconds per period")
    parser.add_argument("--count", type=int, default=5, help="number of periods")
    parser.add_argument("--sim", nargs="?", const="UI2", metavar="VARIANT[@VERSION]",
                        help="a simulated module instead of hardware (default UI2@1.3)")
    parser.add_argument("--sim-clock", choices=("real", "virtual"), default="real",
                        help="simulator time: real (default) or virtual (waits take no time)")
    args = parser.parse_args(argv)
    try:
        import rbamp  # noqa: F401 - installed by pip, or else this checkout's lib/
    except ImportError:
        import simulated

        simulated.add_checkout_paths()
    try:
        if args.sim is not None:
            import simulated

            bus, _ = simulated.bus_of("smbus", ["--sim", args.sim, "--sim-clock", args.sim_clock])
            run(bus, args.addr, args.period, args.count)
            return 0
        with _open_bus(args.bus) as bus:
            run(bus, args.addr, args.period, args.count)
    except (OSError, ValueError) as exc:  # no hardware, no module, a bus error: one line, not a traceback
        text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print("cpython_quickstart: %s" % text, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
