"""A block device kept in a file: the journal's home on stock firmware, which has no spare
flash partition, and on the PC.

``FileBlockDevice(path, block_size, block_count)`` speaks the extended block-device protocol and
behaves like NOR flash, so the journal code runs exactly as it does on a real partition: an
erase writes 0xFF, a program ANDs the new bytes into the old ones. A missing file is created
erased; an existing file of another size is refused rather than reinterpreted.

On a board the file lives on littlefs, which makes each flushed write atomic and does its own
wear levelling underneath; the journal still adds what littlefs does not give: a record that
is never lost to a torn file update, and totals that cannot go backwards.
"""

try:
    import os
except ImportError:  # pragma: no cover - every supported runtime has os
    os = None

_IOCTL_INIT = 1
_IOCTL_DEINIT = 2
_IOCTL_SYNC = 3
_IOCTL_BLOCK_COUNT = 4
_IOCTL_BLOCK_SIZE = 5
_IOCTL_BLOCK_ERASE = 6


def _file_size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


class FileBlockDevice:
    def __init__(self, path, block_size=4096, block_count=16):
        if block_size < 16 or block_count < 1:
            raise ValueError("block_size must be >= 16 and block_count >= 1")
        self.path = path
        self.block_size = block_size
        self.block_count = block_count
        self.size = block_size * block_count
        self._ff_block = b"\xff" * block_size
        self._scratch = bytearray(block_size)
        size = _file_size(path)
        if size < 0:
            with open(path, "wb") as f:
                for _ in range(block_count):
                    f.write(self._ff_block)
        elif size != self.size:
            raise ValueError("%s holds %d bytes, not %d x %d: remove it or use its geometry"
                             % (path, size, block_count, block_size))
        self._file = open(path, "r+b")

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def _seek(self, block, offset, length):
        if self._file is None:
            raise OSError(9, "device closed")
        if not 0 <= block < self.block_count or offset < 0:
            raise OSError(22, "block %r offset %r out of range" % (block, offset))
        address = block * self.block_size + offset
        if address + length > self.size:
            raise OSError(22, "access beyond the device")
        self._file.seek(address)

    def readblocks(self, block, buf, offset=0):
        self._seek(block, offset, len(buf))
        got = self._file.readinto(buf)
        if got != len(buf):
            raise OSError(5, "short read from %s" % self.path)

    def writeblocks(self, block, buf, offset=None):
        if offset is None:
            # Simple protocol: whole blocks, erased first.
            for b in range(block, block + len(buf) // self.block_size):
                self._erase(b)
            offset = 0
        length = len(buf)
        done = 0
        scratch = self._scratch
        view = memoryview(scratch)
        while done < length:
            # A program never crosses into the next block's erase unit, chunk by block.
            position = offset + done
            block_now = block + position // self.block_size
            within = position % self.block_size
            n = min(length - done, self.block_size - within)
            part = view[:n]
            self._seek(block_now, within, n)
            self._file.readinto(part)
            for i in range(n):
                part[i] &= buf[done + i]
            self._seek(block_now, within, n)
            self._file.write(part)
            done += n
        self._sync()

    def _erase(self, block):
        self._seek(block, 0, self.block_size)
        self._file.write(self._ff_block)
        self._sync()

    def _sync(self):
        self._file.flush()
        fsync = getattr(os, "fsync", None)
        if fsync is not None:
            fsync(self._file.fileno())

    def ioctl(self, op, arg):
        if op == _IOCTL_BLOCK_COUNT:
            return self.block_count
        if op == _IOCTL_BLOCK_SIZE:
            return self.block_size
        if op == _IOCTL_BLOCK_ERASE:
            self._erase(arg)
            return 0
        if op == _IOCTL_SYNC:
            if self._file is not None:
                self._sync()
            return 0
        if op in (_IOCTL_INIT, _IOCTL_DEINIT):
            return 0
        return None
