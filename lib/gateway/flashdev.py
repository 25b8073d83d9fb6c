"""Block devices kept in files: the journal's home on stock firmware, which has no spare flash
partition, and on the PC.

Both speak the extended block-device protocol and behave like NOR flash, so the journal code
runs exactly as it does on a real partition: an erase writes 0xFF, a program ANDs the new bytes
into the old ones.

- ``BlockFilesDevice(dir, block_size, block_count)``: one file per block, each in a folder of
  its own (``dir/0/b``, ``dir/1/b``, ...). What the gateway uses. On littlefs a changed file is
  written to a new block whole, and a file's blocks after a change are rewritten too: one 64 KiB
  file cost 10 to 13 block erases per journal commit, a 4 KiB file per block about one
  (measured on MicroPython's VfsLfs2, see BENCHMARKS.md "Flash life"). A file's size and place
  are kept in its folder's metadata, which littlefs rewrites (erases) every few commits: a
  folder per block spreads that over 16 metadata pairs instead of wearing one. The price: each
  folder's metadata pair takes 2 filesystem blocks, 128 KiB for 16 (plus the 64 KiB of data).
  Missing files are created erased, all of them or none (they are made in ``dir.new`` and
  renamed); a block file of another size is refused.
- ``FileBlockDevice(path, block_size, block_count)``: one file for the whole device, the layout
  of a raw flash image (``rbamp journal`` reads these, and journals kept aside are such files).
  A missing file is created erased; an existing file of another size is refused rather than
  reinterpreted.

On a board the files live on littlefs, which makes each flushed write atomic and does its own
wear levelling underneath; the journal still adds what littlefs does not give: a record that
is never lost to a torn file update, and totals that cannot go backwards.

    device = BlockFilesDevice("/energy.d", 4096, 16)
    store = gateway.store.EnergyStore(device)
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


class _NorOnFiles:
    """NOR flash behaviour over files, what both devices share: a program ANDs, an erase writes
    0xFF, and a transfer is cut at block edges (``_open(block)`` gives the file holding a block
    and the block's offset in it)."""

    def _setup(self, path, block_size, block_count):
        if block_size < 16 or block_count < 1:
            raise ValueError("block_size must be >= 16 and block_count >= 1")
        self.path = path
        self.block_size = block_size
        self.block_count = block_count
        self._ff_block = b"\xff" * block_size
        self._scratch = bytearray(block_size)

    def _pieces(self, block, offset, length):
        """(block, offset within it, length) of each part of a transfer, checked."""
        done = 0
        while done < length:
            b = block + (offset + done) // self.block_size
            within = (offset + done) % self.block_size
            n = min(length - done, self.block_size - within)
            if not 0 <= b < self.block_count or offset < 0:
                raise OSError(22, "block %r offset %r out of range" % (block, offset))
            yield b, within, n, done
            done += n

    def readblocks(self, block, buf, offset=0):
        view = memoryview(buf)
        for b, within, n, done in self._pieces(block, offset, len(buf)):
            f, base = self._open(b)
            try:
                f.seek(base + within)
                got = f.readinto(view[done:done + n])
            finally:
                self._done(f)
            if got != n:
                raise OSError(5, "short read from %s" % self.path)

    def writeblocks(self, block, buf, offset=None):
        if offset is None:
            # Simple protocol: whole blocks, erased first.
            for b in range(block, block + len(buf) // self.block_size):
                self._erase(b)
            offset = 0
        view = memoryview(self._scratch)
        for b, within, n, done in self._pieces(block, offset, len(buf)):
            part = view[:n]
            f, base = self._open(b)
            try:
                f.seek(base + within)
                f.readinto(part)
                for i in range(n):
                    part[i] &= buf[done + i]
                f.seek(base + within)
                f.write(part)
            finally:
                self._done(f)
        self._sync()

    def _erase(self, block):
        if not 0 <= block < self.block_count:
            raise OSError(22, "block %r out of range" % (block,))
        f, base = self._open(block)
        try:
            f.seek(base)
            f.write(self._ff_block)
        finally:
            self._done(f)
        self._sync()

    def _open(self, block):
        """(file, offset of ``block`` in it): what each device defines."""
        raise NotImplementedError

    def _done(self, f):
        raise NotImplementedError

    def _sync(self):
        raise NotImplementedError

    def ioctl(self, op, arg):
        if op == _IOCTL_BLOCK_COUNT:
            return self.block_count
        if op == _IOCTL_BLOCK_SIZE:
            return self.block_size
        if op == _IOCTL_BLOCK_ERASE:
            self._erase(arg)
            return 0
        if op == _IOCTL_SYNC:
            self._sync()
            return 0
        if op in (_IOCTL_INIT, _IOCTL_DEINIT):
            return 0
        return None


class FileBlockDevice(_NorOnFiles):
    def __init__(self, path, block_size=4096, block_count=16):
        self._setup(path, block_size, block_count)
        self.size = block_size * block_count
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

    def _open(self, block):
        if self._file is None:
            raise OSError(9, "device closed")
        return self._file, block * self.block_size

    def _done(self, f):
        pass  # the one file stays open

    def _sync(self):
        if self._file is None:
            return
        self._file.flush()
        fsync = getattr(os, "fsync", None)
        if fsync is not None:
            fsync(self._file.fileno())


def path_exists(path):
    """True if ``path`` names a file or folder (MicroPython's os has no os.path)."""
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def remove_tree(path):
    for name in os.listdir(path):
        inner = path + "/" + name
        try:
            os.remove(inner)
        except OSError:
            remove_tree(inner)  # a folder
    os.rmdir(path)


class BlockFilesDevice(_NorOnFiles):
    def __init__(self, path, block_size=4096, block_count=16):
        self._setup(path, block_size, block_count)
        if not path_exists(path):
            self._create()
        for block in range(block_count):
            size = _file_size(self._name(block))
            if size != block_size:
                raise ValueError("%s holds %d bytes, not %d: the journal's block files are damaged "
                                 "or of another geometry; move the folder aside"
                                 % (self._name(block), size, block_size))

    def _name(self, block, base=None):
        return "%s/%d/b" % (base or self.path, block)

    def _create(self):
        # All block files or none: made beside the journal's place, then renamed into it.
        making = self.path + ".new"
        if path_exists(making):
            remove_tree(making)  # an earlier creation cut short: nothing was in it yet
        os.mkdir(making)
        for block in range(self.block_count):
            os.mkdir("%s/%d" % (making, block))
            with open(self._name(block, making), "wb") as f:
                f.write(self._ff_block)
        os.rename(making, self.path)

    def close(self):
        pass  # no file stays open between operations

    def _open(self, block):
        return open(self._name(block), "r+b"), 0

    def _done(self, f):
        f.close()  # closing commits the write (littlefs)

    def _sync(self):
        pass  # every write was closed, and so committed, before it returned


def adopt_image(image_path, dir_path, block_size, block_count):
    """Move a single-file journal (what earlier versions kept) into block files, keeping every
    byte. The block files appear whole (made aside, then renamed); the old file is removed only
    after that, so a power cut at any point leaves one complete copy or both."""
    if path_exists(dir_path):
        if path_exists(image_path):
            os.remove(image_path)  # the move had finished: the block files hold these bytes
        return False
    if not path_exists(image_path) or _file_size(image_path) != block_size * block_count:
        return False
    making = dir_path + ".new"
    if path_exists(making):
        remove_tree(making)
    os.mkdir(making)
    buf = bytearray(block_size)
    with open(image_path, "rb") as src:
        for block in range(block_count):
            if src.readinto(buf) != block_size:
                raise OSError(5, "short read from %s" % image_path)
            os.mkdir("%s/%d" % (making, block))
            with open("%s/%d/b" % (making, block), "wb") as f:
                f.write(buf)
    os.rename(making, dir_path)
    os.remove(image_path)
    return True
