"""``RbAmpFleet``: every rbAmp on one bus, latched together so their periods line up."""

from rbamp import registers as R
from rbamp.device import RbAmp
from rbamp.errors import RbAmpError, RbAmpParamError
from rbamp.snapshot import RbAmpSnapshot


class RbAmpFleet:
    def __init__(self, bus, clock=None, **device_options):
        self.bus = bus
        self.clock = clock
        self._options = device_options
        self.modules = []
        self.errors = {}  # address -> the last exception for that module
        self._tick = 0
        self._snapshots = {}  # address -> the RbAmpSnapshot total_power() reads it into

    def scan(self, addresses=None):
        """Find the rbAmps on the bus and ``begin()`` each. A device that is not an rbAmp is left
        alone: ``begin()`` reads PRODUCT_ID before anything else and never writes to a stranger."""
        from rbamp.transport import transport_for

        found = addresses if addresses is not None else transport_for(self.bus).scan()
        self.modules = []
        self.errors = {}
        for addr in found:
            if not 0x08 <= addr <= 0x77:
                continue
            dev = RbAmp(self.bus, addr, clock=self.clock, **self._options)
            try:
                dev.begin()
            except RbAmpError as exc:
                self.errors[addr] = exc
                continue
            self.modules.append(dev)
            self._snapshots[addr] = RbAmpSnapshot(dev.channels)
        if self.clock is None and self.modules:
            self.clock = self.modules[0].clock
        return self.modules

    def _clock(self):
        if self.clock is None:
            raise RbAmpError("fleet is empty: call scan() first")
        return self.clock

    def latch_all(self):
        """Latch the modules one after another, then one shared 50 ms settle."""
        clock = self._clock()
        latched = []
        for dev in self.modules:
            try:
                dev.latch_period()
            except RbAmpError as exc:
                self.errors[dev.address] = exc
                continue
            latched.append(dev)
        clock.sleep_ms(R.LATCH_SETTLE_MS)
        return latched

    def _next_tick(self):
        self._tick = (self._tick + 1) & 0xFFFF
        if self._tick == 0xFFFF:  # 0xFFFF means "no General Call seen" on the module
            self._tick = 0
        return self._tick

    def gc_latch(self, group=0):
        """Latch every listening module with one General-Call frame; modules whose GC_TICK does
        not show this frame are latched individually. Returns the modules latched by the frame."""
        if not 0 <= group <= 0xFF:
            raise RbAmpParamError("group must be 0..255")
        clock = self._clock()
        tick = self._next_tick()
        frame = bytes((R.GC_MAGIC, R.CMD_LATCH_PERIOD, group, tick & 0xFF, tick >> 8))
        candidates = [dev for dev in self.modules if not dev.latched]
        heard = False
        try:
            self.modules[0].send_general_call(frame)
            heard = True
        except OSError:
            pass  # NACK: nobody listens to General Call (FLEET_CONFIG bit0 unset); latch one by one
        if heard:
            for dev in candidates:
                dev.mark_latched()
        clock.sleep_ms(R.LATCH_SETTLE_MS)
        by_frame = []
        missed = []
        for dev in candidates:
            try:
                heard_tick = dev.read_gc_tick()
            except RbAmpError as exc:
                self.errors[dev.address] = exc
                continue
            if heard and heard_tick == tick:
                by_frame.append(dev)
            else:
                dev.unmark_latched()
                missed.append(dev)
        for dev in missed:
            try:
                dev.latch_period()
            except RbAmpError as exc:
                self.errors[dev.address] = exc
        if missed:
            clock.sleep_ms(R.LATCH_SETTLE_MS)
        return by_frame

    def read_periods(self, use_general_call=False, group=0):
        """Latch all (General Call or one by one) and read every module's period.
        Returns {address: RbAmpPeriodSnapshot or the exception that module raised}."""
        if use_general_call:
            self.gc_latch(group)
        else:
            self.latch_all()
        results = {}
        for dev in self.modules:
            if not dev.latched:
                results[dev.address] = self.errors.get(dev.address, RbAmpError("not latched", dev.address))
                continue
            try:
                results[dev.address] = dev.read_period_snapshot(skip_latch=True, settle_ms=0)
            except RbAmpError as exc:
                self.errors[dev.address] = exc
                results[dev.address] = exc
        return results

    def total_power(self):
        """Sum of RT power over every module and channel (W); unreadable modules are skipped and
        recorded in ``errors``."""
        total = 0.0
        for dev in self.modules:
            try:
                snap = dev.read_all(self._snapshots[dev.address])
            except RbAmpError as exc:
                self.errors[dev.address] = exc
                continue
            for ch in range(dev.channels):
                total += snap.power[ch]
        return total

    def total_energy_wh(self):
        total = 0.0
        for dev in self.modules:
            total += dev.energy.total_wh()
        return total
