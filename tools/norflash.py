"""A NOR-flash test device with power cuts, for the energy journal's tests and benchmark.

It speaks MicroPython's extended block-device protocol (``readblocks(n, buf, off)``,
``writeblocks(n, buf, off)``, ``ioctl``) and behaves like NOR flash:

- a program can only clear bits: the cell becomes ``old & new``; asking for a 0 -> 1 change is
  counted in ``overwrites`` (a correct user of NOR flash keeps it at 0), never raised;
- an erase sets a whole block to 0xFF and counts in ``erase_counts[block]``;
- ``arm_cut(index, mode)`` cuts the power at the index-th mutating operation (programs and
  erases, counted from 0 in ``ops``): ``"before"`` (nothing happens), ``"after"`` (the operation
  completes, then the power goes) or ``"torn"`` (a program leaves some bytes written and some
  bits half-programmed; an erase leaves the block partly erased, partly old, partly random).
  The device then raises ``PowerCut`` on every call until ``revive()``, like a board without
  power. ``PowerCut`` derives from ``BaseException`` so that ``except Exception`` in the code
  under test cannot swallow it.

With ``fast=False`` reads, programs and erases allocate nothing (byte loops), which littlefs
needs: it may call its block device from finalizers while the heap is locked. ``fast=True`` (the
default) uses slices and big ints, which is much quicker on CPython.
"""

_OP_BEFORE = "before"
_OP_AFTER = "after"
_OP_TORN = "torn"
CUT_MODES = (_OP_BEFORE, _OP_AFTER, _OP_TORN)


class PowerCut(BaseException):
    """The simulated supply died."""


class NorFlash:
    def __init__(self, block_size=4096, block_count=16, seed=1, fast=True, fill=0xFF):
        self.block_size = block_size
        self.block_count = block_count
        self.size = block_size * block_count
        self.data = bytearray(bytes([fill]) * self.size)
        self.erase_counts = [0] * block_count
        self.fast = fast
        self.ops = 0
        self.programs = 0
        self.bytes_programmed = 0
        self.overwrites = 0
        self.cut_at = -1
        self.cut_mode = None
        self.dead = False
        self.on_erase = None  # called with the block number before each erase (test probes)
        self._rng = (seed * 2654435761 + 1) & 0xFFFFFFFF or 1
        self._ff_block = b"\xff" * block_size

    # ------------------------------------------------------------------ fault control

    def arm_cut(self, op_index, mode):
        if mode not in CUT_MODES:
            raise ValueError("cut mode must be one of %r" % (CUT_MODES,))
        self.cut_at = op_index
        self.cut_mode = mode

    def revive(self):
        """Power is back: the device answers again, its contents as the cut left them."""
        self.dead = False
        self.cut_at = -1
        self.cut_mode = None

    def random(self, bound):
        """Deterministic 0 .. bound-1 from the device's own xorshift32 (same on every runtime)."""
        x = self._rng
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self._rng = x
        return x % bound

    def flip_bit(self, address, bit):
        self.data[address] ^= 1 << bit

    def scramble_block(self, block):
        """Overwrite a block with random bytes (not counted as a flash operation)."""
        base = block * self.block_size
        for i in range(self.block_size):
            self.data[base + i] = self.random(256)

    def _begin(self):
        if self.dead:
            raise PowerCut("device read or written without power")
        index = self.ops
        self.ops += 1
        if index != self.cut_at:
            return None
        if self.cut_mode == _OP_BEFORE:
            self.dead = True
            raise PowerCut("power cut before operation %d" % index)
        return self.cut_mode

    def _address(self, block, offset, length):
        if not 0 <= block < self.block_count:
            raise OSError(22, "block %d out of range" % block)
        address = block * self.block_size + offset
        if offset < 0 or address + length > self.size:
            raise OSError(22, "access beyond the device")
        return address

    # ------------------------------------------------------------------ block-device protocol

    def readblocks(self, block, buf, offset=0):
        if self.dead:
            raise PowerCut("device read without power")
        n = len(buf)
        address = self._address(block, offset, n)
        if self.fast:
            buf[:] = self.data[address:address + n]
        else:
            data = self.data
            for i in range(n):
                buf[i] = data[address + i]

    def writeblocks(self, block, buf, offset=None):
        if offset is None:
            # Simple protocol: whole blocks, erased first.
            count = len(buf) // self.block_size
            for b in range(block, block + count):
                self._erase(b)
            offset = 0
        self._program(block, buf, offset)

    def ioctl(self, op, arg):
        if op == 4:
            return self.block_count
        if op == 5:
            return self.block_size
        if op == 6:
            self._erase(arg)
            return 0
        if op in (1, 2, 3):
            if self.dead:
                raise PowerCut("device used without power")
            return 0
        return None

    # ------------------------------------------------------------------ flash physics

    def _program(self, block, buf, offset):
        n = len(buf)
        address = self._address(block, offset, n)
        mode = self._begin()
        data = self.data
        if mode == _OP_TORN:
            self._torn_program(address, buf)
            self.dead = True
            raise PowerCut("power cut during a program at %d" % address)
        self.programs += 1
        self.bytes_programmed += n
        if self.fast:
            old = int.from_bytes(data[address:address + n], "little")
            new = int.from_bytes(buf, "little")
            if new & ~old:
                self.overwrites += 1
            data[address:address + n] = (old & new).to_bytes(n, "little")
        else:
            needed_set = False
            for i in range(n):
                old = data[address + i]
                new = buf[i]
                if new & ~old & 0xFF:
                    needed_set = True
                data[address + i] = old & new
            if needed_set:
                self.overwrites += 1
        if mode == _OP_AFTER:
            self.dead = True
            raise PowerCut("power cut after a program at %d" % address)

    def _torn_program(self, address, buf):
        n = len(buf)
        data = self.data
        if self.random(2):
            # Programming got this far: a prefix done, one byte half done, the rest untouched.
            done = self.random(n + 1)
            for i in range(done):
                data[address + i] &= buf[i]
            if done < n:
                data[address + done] &= buf[done] | self.random(256)
        else:
            # Every cell part-way: each bit still to clear may or may not have cleared.
            for i in range(n):
                data[address + i] &= buf[i] | self.random(256)

    def _erase(self, block):
        if self.on_erase is not None and not self.dead:
            self.on_erase(block)
        address = self._address(block, 0, self.block_size)
        mode = self._begin()
        self.erase_counts[block] += 1
        size = self.block_size
        data = self.data
        if mode == _OP_TORN:
            self._torn_erase(address)
            self.dead = True
            raise PowerCut("power cut during the erase of block %d" % block)
        if self.fast:
            data[address:address + size] = self._ff_block
        else:
            for i in range(size):
                data[address + i] = 0xFF
        if mode == _OP_AFTER:
            self.dead = True
            raise PowerCut("power cut after the erase of block %d" % block)

    def _torn_erase(self, address):
        size = self.block_size
        data = self.data
        kind = self.random(3)
        if kind == 0:
            # Erased up to some point, the old contents beyond it.
            done = self.random(size + 1)
            for i in range(done):
                data[address + i] = 0xFF
        elif kind == 1:
            # Cells part-way back to 1: each bit may or may not have been set.
            for i in range(size):
                data[address + i] |= self.random(256)
        else:
            # Nothing recognisable left.
            for i in range(size):
                data[address + i] = self.random(256)

    # ------------------------------------------------------------------ observations

    def max_erases(self):
        return max(self.erase_counts)

    def min_erases(self):
        return min(self.erase_counts)

    def snapshot(self):
        return bytes(self.data)
