"""Who the gateway is to Home Assistant: its device id, stable across boots.

    name = device_id(config, board, modules, log)   # config.json's, else kept in the file device_id
"""


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
        if kept:
            return kept
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
