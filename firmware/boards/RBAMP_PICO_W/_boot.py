# Mounts the filesystem on the part of the flash storage region after the energy journal (the
# port's own _boot.py would format the whole region, journal included). A filesystem that does not
# mount, as after flashing over stock MicroPython whose filesystem spanned the whole region, is
# formatted.
import vfs
import rp2
import board_layout

bdev = rp2.Flash(start=board_layout.FS_START, len=board_layout.FS_LEN)
try:
    fs = vfs.VfsLfs2(bdev, progsize=256)  # the RP2040 flash programs in 256-byte pages
except OSError:
    vfs.VfsLfs2.mkfs(bdev, progsize=256)
    fs = vfs.VfsLfs2(bdev, progsize=256)
vfs.mount(fs, "/")

del vfs, rp2, board_layout, bdev, fs
