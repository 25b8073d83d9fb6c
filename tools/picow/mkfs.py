# A littlefs2 image of the Pico W image's filesystem, made with MicroPython's own VfsLfs2 (the
# unix port: .venv/bin/micropython), so the on-flash format is exactly what the board mounts.
#
#   micropython tools/picow/mkfs.py OUT.img BLOCKS NAME=HOSTFILE [NAME=HOSTFILE ...]
#
# BLOCKS x 4096 bytes, formatted and mounted as firmware/boards/RBAMP_PICO_W/_boot.py does
# (progsize=256, the RP2040's flash page). The image is written to OUT.img, ready to be placed at
# the filesystem's flash offset.
import sys
import vfs

BLOCK = 4096


class RamBlocks:
    def __init__(self, count):
        self.data = bytearray(b"\xff" * (count * BLOCK))
        self.count = count

    def readblocks(self, block, buf, offset=0):
        start = block * BLOCK + offset
        buf[:] = self.data[start:start + len(buf)]

    def writeblocks(self, block, buf, offset=None):
        if offset is None:
            # whole-block write: erase first, as rp2.Flash does
            self.data[block * BLOCK:(block + 1) * BLOCK] = b"\xff" * BLOCK
            offset = 0
        start = block * BLOCK + offset
        self.data[start:start + len(buf)] = buf

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self.count
        if op == 5:  # block size
            return BLOCK
        if op == 6:  # erase
            self.data[arg * BLOCK:(arg + 1) * BLOCK] = b"\xff" * BLOCK
            return 0
        return 0


def main(argv):
    out = argv[1]
    blocks = int(argv[2])
    dev = RamBlocks(blocks)
    vfs.VfsLfs2.mkfs(dev, progsize=256)
    fs = vfs.VfsLfs2(dev, progsize=256)
    vfs.mount(fs, "/picow")
    for spec in argv[3:]:
        name, host = spec.split("=", 1)
        with open(host, "rb") as src:
            data = src.read()
        with open("/picow/" + name, "wb") as dst:
            dst.write(data)
    vfs.umount("/picow")
    with open(out, "wb") as f:
        f.write(dev.data)


main(sys.argv)
