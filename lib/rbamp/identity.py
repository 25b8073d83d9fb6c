"""What ``begin()`` learned about a module: protocol version, variant, channels, capabilities.

One object, shared by the driver's parts (``RbAmp``, ``Provisioning``), so each checks "begun"
and channel numbers the same way without reaching into another's state.
"""

from rbamp import registers as R
from rbamp.errors import RbAmpError, RbAmpIOError, RbAmpNotFoundError, RbAmpParamError, RbAmpVersionError


class ModuleIdentity:
    def __init__(self):
        self.version = None  # VERSION register: 0x03 = v1.2, 0x04 = v1.3; None before begin()
        self.variant = None
        self.channels = 0
        self.has_voltage = False
        self.capability = 0
        self.tier = 0
        self.flash_blank = False
        self.config_dirty = False  # a setting changed through the driver since the last save

    def require_begun(self, address):
        if self.version is None:
            raise RbAmpError("call begin() first", address)

    def check_channel(self, ch):
        if not isinstance(ch, int) or not 0 <= ch < self.channels:
            raise RbAmpParamError("channel %r out of range: this %s has %d channel(s)" % (
                ch, self.variant, self.channels))


def identify(io, ident):
    """Read PRODUCT_ID, VERSION, HW_VARIANT, CAPABILITY and FW_TIER into ``ident``; a missing,
    foreign or too old device raises before anything is written to it."""
    addr = io.address
    try:
        product = io.read_u8(R.PRODUCT_ID)
    except RbAmpIOError as exc:
        found = io.scan_quietly()
        if addr not in found:
            raise RbAmpNotFoundError(
                "no device acknowledges this address: check SDA/SCL wiring, pull-ups, the "
                "module's power and its address (bus scan: %s)" % (
                    ", ".join("0x%02X" % a for a in found) if found else "nothing found"), addr)
        raise exc
    if product != R.PRODUCT_RBAMP:
        raise RbAmpNotFoundError("the device here is not an rbAmp (PRODUCT_ID 0x%02X, expected "
                                 "0x01); nothing was written to it" % product, addr, R.PRODUCT_ID)
    version = io.read_u8(R.VERSION)
    if version < R.VERSION_V12:
        raise RbAmpVersionError("firmware protocol 0x%02X is older than v1.2 (0x03); update the "
                                "module" % version, addr, R.VERSION)
    variant_code = io.read_u8(R.HW_VARIANT)
    if variant_code not in R.VARIANTS:
        raise RbAmpVersionError("unknown HW_VARIANT 0x%02X" % variant_code, addr, R.HW_VARIANT)
    capability = io.read_u16(R.CAPABILITY)
    ident.variant, ident.channels, has_voltage = R.VARIANTS[variant_code]
    ident.has_voltage = bool(capability & R.CAP_HAS_VOLTAGE) if capability else has_voltage
    ident.capability = capability
    ident.tier = io.read_u8(R.FW_TIER)
    ident.version = version
    io.burst = version >= R.VERSION_V13
