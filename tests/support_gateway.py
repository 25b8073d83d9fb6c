"""The whole gateway on virtual time (tools/gateway_rig.py), with its data folder in the test's
temporary directory."""

import gateway_rig
import xrt
from gateway_rig import ListLog, MainsCollapse, SimBoard, boot, config, constant, journal  # noqa: F401


class Rig(gateway_rig.Rig):
    def __init__(self, name, specs, blocks=16):
        gateway_rig.Rig.__init__(self, xrt.tmp_path(name), specs, blocks)
