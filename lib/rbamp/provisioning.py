"""Configuration of a module: sensor class, CT models, label, address, RAM settings, errors.

Every write is read-compare-write (no module flash cycle or event when nothing changes), every
command's ERROR is checked right after it, and CT bindings are verified through their mirrors.
The module's flash lasts ~10 000 saves: these are provisioning calls, never for a loop.
``RbAmp`` holds one ``Provisioning`` next to its other parts; all of them share one
``RegisterIO`` (``rbamp.regio``) and one ``ModuleIdentity`` (``rbamp.identity``).
"""

from rbamp import registers as R
from rbamp.errors import RbAmpCommandError, RbAmpError, RbAmpParamError
from rbamp.sampling import sample_bits

SENSOR_CLASSES = (0, 1, 2, 3)
CT_MODELS = (1, 2, 3, 4, 5, 6, 7)


class RbAmpSensorClass:
    UNSET = 0
    SCT013 = 1
    WIRED_CT = 2
    BUILTIN_CT = 3


# DIGEST_CONFIG bits: (bit, size of one field, per channel, scale)
_DIGEST_FIELDS = (
    (0x01, "current", 2, True, 100),
    (0x02, "voltage", 2, False, 10),
    (0x04, "power", 2, True, 1),
    (0x08, "power_factor", 1, True, 100),
)


class Provisioning:
    """Settings and commands of one module, through its register I/O."""

    def __init__(self, io, clock, ident):
        self.io = io
        self.clock = clock
        self.ident = ident
        self._word = bytearray(2)
        # RAM-only settings to restore after a module reboot: register -> (value, size)
        self._ram = {}

    @property
    def address(self):
        return self.io.address

    def _require_begun(self):
        self.ident.require_begun(self.io.address)

    # ------------------------------------------------------------------ commands and errors
    def _command(self, opcode, wait_ms=0, what="command"):
        self.io.write_u8(R.COMMAND, opcode)
        if wait_ms:
            self.clock.sleep_ms(wait_ms)
        self._check_error(what, R.COMMAND)

    def _check_error(self, what, reg):
        code = self.io.read_u8(R.ERROR)
        if code not in (R.ERROR_OK, R.ERROR_FLASH_BLANK):
            raise RbAmpCommandError("module rejected %s: ERROR 0x%02X (%s)" % (
                what, code, R.ERROR_NAMES.get(code, "unknown")), code, self.address, reg)

    def _write_checked(self, reg, value, what):
        self.io.write_u8(reg, value)
        self._check_error(what, reg)

    def read_last_error(self):
        self._require_begun()
        return self.io.read_u8(R.ERROR)

    def clear_error(self):
        """CLEAR_ERROR: resets ERROR (except a clone) and the durable EVENT_FLAGS.ERROR bit."""
        self._require_begun()
        self.io.write_u8(R.COMMAND, R.CMD_CLEAR_ERROR)

    def read_event_flags(self):
        self._require_begun()
        return self.io.read_u8(R.EVENT_FLAGS)

    def clear_event_flags(self, mask):
        if not isinstance(mask, int) or not 0 <= mask <= 0x3F:
            raise RbAmpParamError("event mask must be 0..0x3F")
        self._require_begun()
        self.io.write_u8(R.EVENT_FLAGS, mask)

    def read_status(self):
        self._require_begun()
        return self.io.read_u8(R.STATUS)

    # ------------------------------------------------------------------ sensor class and CT models
    def read_sensor_class(self):
        self._require_begun()
        return self.io.read_u8(R.SENSOR_CLASS)

    def set_sensor_class(self, sensor_class):
        """Changing the class resets the staged CT model on the module."""
        if sensor_class not in SENSOR_CLASSES:
            raise RbAmpParamError("sensor class must be 0 (unset), 1 (SCT-013), 2 (wired CT) or 3 "
                                  "(built-in CT), got %r" % (sensor_class,))
        self._require_begun()
        if self.io.read_u8(R.SENSOR_CLASS) == sensor_class:
            return False
        self._write_checked(R.SENSOR_CLASS, sensor_class, "sensor class %d" % sensor_class)
        self.ident.config_dirty = True
        return True

    def read_ct_model_ch(self, ch):
        self.ident.check_channel(ch)
        return self.io.read_u8(R.CT_MODEL_CH0 + ch)

    def set_ct_model_ch(self, ch, code):
        """Bind CT model ``code`` to channel ``ch`` (sensor class must be SCT-013)."""
        self._require_begun()
        self.ident.check_channel(ch)
        if code not in CT_MODELS:
            raise RbAmpParamError("CT model code must be 1..7, got %r" % (code,))
        sensor_class = self.io.read_u8(R.SENSOR_CLASS)
        if sensor_class != RbAmpSensorClass.SCT013:
            raise RbAmpParamError("CT model codes apply to sensor class 1 (SCT-013); this module's "
                                  "class is %d: call set_sensor_class(1) first" % sensor_class)
        if self.io.read_u8(R.CT_MODEL_CH0 + ch) == code:
            return False
        if self.io.read_u8(R.CT_MODEL) != code:
            self._write_checked(R.CT_MODEL, code, "CT model %d" % code)
        self._command(R.CMD_SET_CT_MODEL_CH0 + ch, R.CT_BIND_MS, "SET_CT_MODEL_CH%d" % ch)
        applied = self.io.read_u8(R.CT_MODEL_CH0 + ch)
        if applied != code:
            raise RbAmpError("CT model %d was not applied to channel %d (mirror reads %d)" % (
                code, ch, applied), self.address, R.CT_MODEL_CH0 + ch)
        self.ident.config_dirty = True
        return True

    def set_ct_model(self, code):
        """The same CT model on every channel."""
        self._require_begun()
        changed = False
        for ch in range(self.ident.channels):
            changed = self.set_ct_model_ch(ch, code) or changed
        return changed

    def save_user_config(self, force=False):
        """Persist class, CT models, fleet config, group and label in the module's flash.

        Skipped (returns False) when nothing changed through this object and the module's flash
        is not blank, unless ``force``. v1.3 uses SAVE_USER_CONFIG, older firmware SAVE_GAINS."""
        self._require_begun()
        if not (force or self.ident.flash_blank or self.ident.config_dirty):
            return False
        if self.ident.capability & R.CAP_SAVE_USER_CONFIG or self.ident.version >= R.VERSION_V13:
            opcode = R.CMD_SAVE_USER_CONFIG
        else:
            opcode = R.CMD_SAVE_GAINS
        self._command(opcode, R.SAVE_MS, "save (opcode 0x%02X)" % opcode)
        self.ident.config_dirty = False
        self.ident.flash_blank = False
        return True

    def is_provisioned(self):
        """The module has saved settings (its flash was not blank at boot) and a sensor class."""
        self._require_begun()
        return not self.ident.flash_blank and self.io.read_u8(R.SENSOR_CLASS) != 0

    # ------------------------------------------------------------------ label and identity
    def read_label(self):
        self._require_begun()
        buf = bytearray(R.LABEL_LEN)
        self.io.read_block(R.LABEL, buf, 0, R.LABEL_LEN)
        end = 0
        while end < R.LABEL_LEN and buf[end]:
            end += 1
        return bytes(buf[:end]).decode()

    def set_label(self, text):
        """Up to 8 printable ASCII characters; written byte by byte (a burst keeps only one byte)."""
        if not isinstance(text, str):
            raise RbAmpParamError("label must be a str")
        data = text.encode()
        if len(data) > R.LABEL_LEN:
            raise RbAmpParamError("label %r is longer than 8 bytes" % text)
        for b in data:
            if not 0x20 <= b < 0x7F:
                raise RbAmpParamError("label %r must be printable ASCII" % text)
        self._require_begun()
        current = bytearray(R.LABEL_LEN)
        self.io.read_block(R.LABEL, current, 0, R.LABEL_LEN)
        changed = False
        for i in range(R.LABEL_LEN):
            want = data[i] if i < len(data) else 0
            if current[i] != want:
                self._write_checked(R.LABEL + i, want, "label byte %d" % i)
                changed = True
        if changed:
            self.ident.config_dirty = True
        return changed

    def read_uid(self):
        self._require_begun()
        buf = bytearray(R.UID_LEN)
        self.io.read_block(R.UID, buf, 0, R.UID_LEN)
        return bytes(buf)

    def read_reset_cause(self):
        self._require_begun()
        return self.io.read_u8(R.RESET_CAUSE)

    # ------------------------------------------------------------------ RAM settings
    def _set_ram_u8(self, reg, value, name):
        self._require_begun()
        self._ram[reg] = (value, 1)
        if self.io.read_u8(reg) != value:
            self._write_checked(reg, value, name)

    def _set_ram_u16(self, reg, value, name):
        self._require_begun()
        self._ram[reg] = (value, 2)
        if self.io.read_u16(reg) != value:
            # byte at a time: v1.3 keeps only the first byte of a burst write
            self._write_checked(reg, value & 0xFF, name)
            self._write_checked(reg + 1, value >> 8, name)

    def restore_ram_settings(self):
        """After a module reboot: DIGEST_CONFIG, thresholds and EVENT_MASK are back to defaults."""
        for reg in self._ram:
            value, size = self._ram[reg]
            if size == 1:
                self.io.write_u8(reg, value)
            else:
                self.io.write_u16(reg, value)

    def digest_config(self):
        """The DIGEST_CONFIG this driver keeps on the module (its 5 Hz sample reads the digest)."""
        entry = self._ram.get(R.DIGEST_CONFIG)
        return entry[0] if entry is not None else 0

    def ensure_digest_fields(self):
        """begin(): the digest carries what the 5 Hz sample reads (voltage and power)."""
        config = self.digest_config() | sample_bits(self.ident.has_voltage)
        self._set_ram_u8(R.DIGEST_CONFIG, config, "digest config")

    def set_current_threshold(self, amps):
        """EVENT_FLAGS.THRESH_I when any channel's current exceeds ``amps`` (None: off)."""
        if amps is None:
            raw = 0xFFFF
        else:
            if not 0 <= amps < 655.35:
                raise RbAmpParamError("current threshold must be 0..655.34 A or None")
            raw = int(amps * 100 + 0.5)
        self._set_ram_u16(R.THRESH_I_HI, raw, "current threshold")

    def set_power_threshold(self, watts):
        """EVENT_FLAGS.THRESH_P when any channel's power exceeds ``watts`` (None: off)."""
        if watts is None:
            raw = 0xFFFF
        else:
            if not 0 <= watts < 65535:
                raise RbAmpParamError("power threshold must be 0..65534 W or None")
            raw = int(watts + 0.5)
        self._set_ram_u16(R.THRESH_P_HI, raw, "power threshold")

    def read_thresholds(self):
        """(amps or None, watts or None) as the module holds them."""
        self._require_begun()
        buf = bytearray(4)
        self.io.read_block(R.THRESH_I_HI, buf, 0, 4)
        current = buf[0] | (buf[1] << 8)
        power = buf[2] | (buf[3] << 8)
        return (None if current == 0xFFFF else current / 100, None if power == 0xFFFF else power)

    def set_event_mask(self, mask):
        """Events that hold DRDY low until cleared (``wait_drdy`` then paces by the 200 ms window)."""
        if not isinstance(mask, int) or not 0 <= mask <= 0x3F:
            raise RbAmpParamError("event mask must be 0..0x3F")
        self._set_ram_u8(R.EVENT_MASK, mask, "event mask")

    def read_event_mask(self):
        self._require_begun()
        return self.io.read_u8(R.EVENT_MASK)

    def set_digest_config(self, mask):
        """Fields of the digest: bit0 currents, bit1 voltage, bit2 powers, bit3 power factors.
        The voltage (UI variants) and power bits are always kept: the 5 Hz sample reads them."""
        if not isinstance(mask, int) or not 0 <= mask <= 0x0F:
            raise RbAmpParamError("digest config must be 0..0x0F")
        self._require_begun()
        self._set_ram_u8(R.DIGEST_CONFIG, mask | sample_bits(self.ident.has_voltage), "digest config")

    def read_digest(self, into=None):
        """The 22-byte digest (read-frozen on v1.3: one burst is never torn)."""
        self._require_begun()
        buf = into if into is not None else bytearray(R.DIGEST_LEN)
        self.io.read_block(R.DIGEST, buf, 0, R.DIGEST_LEN)
        return buf

    def decode_digest(self, buf, config=None):
        """A dict of the digest's fields, scaled to A, V, W and 0..1."""
        if config is None:
            config = self.digest_config() if R.DIGEST_CONFIG in self._ram else self.io.read_u8(R.DIGEST_CONFIG)
        out = {"status": buf[0], "seq": buf[1]}
        pos = 2
        for bit, name, size, per_channel, scale in _DIGEST_FIELDS:
            if not config & bit:
                continue
            values = []
            for _ in range(self.ident.channels if per_channel else 1):
                if pos + size > R.DIGEST_LEN:
                    break
                if size == 2:
                    raw = buf[pos] | (buf[pos + 1] << 8)
                    if name == "power" and raw >= 0x8000:
                        raw -= 0x10000
                else:
                    raw = buf[pos]
                values.append(raw / scale if scale != 1 else raw)
                pos += size
            out[name] = values if per_channel else (values[0] if values else None)
        return out

    # ------------------------------------------------------------------ fleet settings
    def set_fleet(self, accept_general_call, group=0):
        """FLEET_CONFIG bit0 and GROUP_ID (saved with save_user_config, active after a reset)."""
        if not 0 <= group <= 0xFF:
            raise RbAmpParamError("group must be 0..255")
        self._require_begun()
        changed = False
        want = 1 if accept_general_call else 0
        if self.io.read_u8(R.FLEET_CONFIG) & 1 != want:
            self._write_checked(R.FLEET_CONFIG, want, "fleet config")
            changed = True
        if self.io.read_u8(R.GROUP_ID) != group:
            self._write_checked(R.GROUP_ID, group, "group id")
            changed = True
        if changed:
            self.ident.config_dirty = True
        return changed

    # ------------------------------------------------------------------ address
    def commit_address(self, new_addr):
        """Stage ``new_addr``, arm the magic and COMMIT_ADDR (RbAmp.change_address does the rest)."""
        if self.io.answers(new_addr):
            raise RbAmpParamError("address 0x%02X is already taken by another device" % new_addr)
        self._write_checked(R.I2C_ADDRESS, new_addr, "staged address")
        self._write_checked(R.ADDR_COMMIT_MAGIC, R.ADDR_MAGIC, "address magic")
        self._command(R.CMD_COMMIT_ADDR, R.SAVE_MS, "COMMIT_ADDR")
