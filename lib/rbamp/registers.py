"""Register addresses, commands and codes of the rbAmp module (protocol v1.2 and v1.3).

The driver keeps its own table, separate from the simulator's, so a wrong address cannot be shared
by the code under test and the reference it is tested against.
"""

try:
    from micropython import const  # pyright: ignore[reportAssignmentType]  # CPython: the fallback below
except ImportError:
    def const(value):
        return value

STATUS = const(0x00)
COMMAND = const(0x01)
ERROR = const(0x02)
VERSION = const(0x03)
CT_MODEL = const(0x05)
PERIOD_VALID = const(0x07)
AC_FREQ = const(0x20)
AC_PERIOD = const(0x21)
TOPOLOGY = const(0x24)
SENSOR_CLASS = const(0x25)
FLEET_CONFIG = const(0x27)
GROUP_ID = const(0x28)
DIGEST_CONFIG = const(0x29)
EVENT_FLAGS = const(0x2A)
EVENT_MASK = const(0x2B)
THRESH_I_HI = const(0x2C)
THRESH_P_HI = const(0x2E)
I2C_ADDRESS = const(0x30)
ADDR_COMMIT_MAGIC = const(0x31)
UPTIME_S = const(0x46)
RESET_CAUSE = const(0x4A)
I2C_ERR_COUNT = const(0x4B)
CT_MODEL_CH0 = const(0x51)
PRODUCT_ID = const(0x54)
HW_VARIANT = const(0x55)
FW_TIER = const(0x56)
CAPABILITY = const(0x57)
GC_TICK = const(0x59)
UID = const(0x5C)
LABEL = const(0x68)
DIGEST = const(0x70)
RT_BLOCK = const(0x86)
U_RMS = const(0x86)
U_PEAK = const(0x8A)
I_RMS0 = const(0x8E)
I_PEAK0 = const(0x9A)
P0 = const(0xA6)
PF0 = const(0xB2)
PERIOD_BLOCK = const(0xBE)  # PERIOD_COMMIT_CNT .. PERIOD_MAX_P, one burst on v1.3
PERIOD_COMMIT_CNT = const(0xBE)
PERIOD_AVG_P_CH1 = const(0xC2)
PERIOD_AVG_P_CH2 = const(0xC6)
Q0 = const(0xD0)
PERIOD_AVG_P = const(0xDC)
PERIOD_MAX_P = const(0xE0)
PERIOD_LATCH_MS = const(0xEC)

RT_BLOCK_LEN = const(56)
RT_FLOATS = const(14)
PERIOD_BLOCK_LEN = const(38)  # 0xBE..0xE3
DIGEST_LEN = const(22)
LABEL_LEN = const(8)
UID_LEN = const(12)

STATUS_READY = const(0x01)

CMD_RESET = const(0x01)
CMD_SAVE_GAINS = const(0x26)
CMD_LATCH_PERIOD = const(0x27)
CMD_SET_CT_MODEL_CH0 = const(0x28)
CMD_COMMIT_ADDR = const(0x30)
CMD_CLEAR_ERROR = const(0x31)
CMD_SAVE_USER_CONFIG = const(0x32)

ERROR_OK = const(0x00)
ERROR_CLONE = const(0xF9)
ERROR_FLASH_BLANK = const(0xFB)
ERROR_NOT_READY = const(0xFC)
ERROR_BAD_PARAM = const(0xFE)

EVENT_PERIOD_READY = const(0x01)
EVENT_THRESH_I = const(0x02)
EVENT_THRESH_P = const(0x04)
EVENT_ERROR = const(0x08)
EVENT_CONFIG_CHANGED = const(0x10)
EVENT_RESET_OCCURRED = const(0x20)

PRODUCT_RBAMP = const(0x01)
VERSION_V12 = const(0x03)
VERSION_V13 = const(0x04)
ADDR_MAGIC = const(0xA5)
GC_MAGIC = const(0xA5)
CAP_HAS_VOLTAGE = const(0x0100)
CAP_SAVE_USER_CONFIG = const(0x0200)

# HW_VARIANT code -> (name, current channels, has voltage)
VARIANTS = {
    1: ("UI1", 1, True),
    2: ("UI2", 2, True),
    3: ("UI3", 3, True),
    4: ("I1", 1, False),
    5: ("I2", 2, False),
    6: ("I3", 3, False),
}

ERROR_NAMES = {
    0xF9: "clone detected",
    0xFA: "LUT bad",
    0xFB: "flash parameters blank",
    0xFC: "not ready",
    0xFD: "sensor overflow",
    0xFE: "bad parameter",
    0xFF: "unhandled",
}

WINDOW_MS = const(200)
LATCH_SETTLE_MS = const(50)
CT_BIND_MS = const(5)
SAVE_MS = const(700)
RESET_MS = const(300)
