"""The driver's exceptions.

Runtime conditions (bus failures, timeouts, a missing or foreign device, stale periods, an
unsupported firmware, a command the module rejected) are ``RbAmpError``, which is an ``OSError``
carrying an errno, the module address and, where one is involved, the register. Caller mistakes
(an address outside 0x08..0x77, a channel the module does not have, a CT code its sensor class does
not allow) are ``RbAmpParamError``, a ``ValueError``. MicroPython 1.29 refuses exception classes
with two built-in bases, so one class cannot be both.
"""

try:
    import errno as _errno
except ImportError:  # pragma: no cover
    _errno = None

EIO = getattr(_errno, "EIO", 5)
ENODEV = getattr(_errno, "ENODEV", 19)
ETIMEDOUT = getattr(_errno, "ETIMEDOUT", 110)
EAGAIN = getattr(_errno, "EAGAIN", 11)
EPROTO = getattr(_errno, "EPROTO", 71)
EINVAL = getattr(_errno, "EINVAL", 22)


def _where(addr, reg):
    if addr is None:
        return ""
    if reg is None:
        return " (module 0x%02X)" % addr
    return " (module 0x%02X, register 0x%02X)" % (addr, reg)


class RbAmpError(OSError):
    """Base of every runtime error the driver raises; ``except OSError`` catches it too."""

    default_errno = EIO

    def __init__(self, message, addr=None, reg=None, errno=None):
        super().__init__(errno if errno is not None else self.default_errno, message + _where(addr, reg))
        self.addr = addr
        self.reg = reg


class RbAmpIOError(RbAmpError):
    """The bus kept failing after the bounded retries."""


class RbAmpTimeoutError(RbAmpIOError):
    """The module did not become ready (or the bus stayed stuck) within the allowed time."""

    default_errno = ETIMEDOUT


class RbAmpNotFoundError(RbAmpIOError):
    """Nothing acknowledges the address, or what answers is not an rbAmp."""

    default_errno = ENODEV


class RbAmpStaleError(RbAmpError):
    """The latch produced no fresh period (``PERIOD_VALID == 0``); no energy was counted for it."""

    default_errno = EAGAIN


class RbAmpVersionError(RbAmpError):
    """The module's firmware speaks a protocol this driver does not support, or lacks a feature."""

    default_errno = EPROTO


class RbAmpCommandError(RbAmpError):
    """The module answered a write with a non-zero ERROR code (kept in ``code``)."""

    def __init__(self, message, code, addr=None, reg=None):
        super().__init__(message, addr, reg, EINVAL)
        self.code = code


class RbAmpParamError(ValueError):
    """A bad argument from the caller; nothing was sent to the module."""
