"""Who the gateway is to Home Assistant: its device id, stable across boots.

    name = device_id(config, board, modules, log)   # config.json's, else kept in the file device_id
"""

from gateway.config_schema import DEVICE_ID_CHARS, DEVICE_ID_MAX


def is_device_id(text):
    """True for what config.json accepts as a device_id (also one plain MQTT topic level)."""
    if not 0 < len(text) <= DEVICE_ID_MAX:
        return False
    for char in text:
        if char not in DEVICE_ID_CHARS:
            return False
    return True


def device_id(config, board, modules, log):
    """config.json's device_id, else the one chosen at the first boot and kept in a file, so
    Home Assistant sees the same device whether or not a module answers at this boot. The first
    choice is the first begun module's chip id, else the board's."""
    if config["device_id"]:
        return config["device_id"]
    path = board.path("device_id")
    try:
        with open(path) as f:
            kept = f.read().strip()
        if is_device_id(kept):
            return kept
        log.warning("the device id kept in %s is not usable (%r); choosing one again", path, kept[:40])
    except OSError:
        pass  # first boot: none chosen yet
    from rbamp import RbAmpError  # loaded by then; importing it at the top nests too deep on a board

    chosen = None
    for module in modules:
        if module.begun:
            try:
                chosen = "rbamp-" + "".join("%02x" % b for b in module.dev.read_uid()[-6:])
                break
            except RbAmpError:
                continue
    if chosen is None:
        try:
            chosen = "rbamp-" + board.unique_id()[-12:]
        except Exception:  # a board without a unique id: a fixed name still works for one gateway
            chosen = "rbamp-gateway"
    try:
        with open(path, "w") as f:
            f.write(chosen)
    except OSError as exc:
        log.warning("could not keep the device id in %s (%s): it may change at a boot without "
                    "the module; set device_id in config.json", path, exc)
    return chosen
