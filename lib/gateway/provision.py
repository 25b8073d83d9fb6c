"""Bring a module's own settings in line with config.json when it begins.

    provision(dev, {"sensor_class": 1, "ct_models": [3, 3], "label": "house"}, log)
"""


def provision(dev, module_cfg, log):
    """Apply the config's sensor class, CT models and label; save in the module (a flash write
    it survives ~10 000 times) only when something changed. True if it saved."""
    changed = False
    if module_cfg["sensor_class"] is not None:
        changed = dev.set_sensor_class(module_cfg["sensor_class"]) or changed
    models = module_cfg["ct_models"]
    if models:
        for ch in range(min(len(models), dev.channels)):
            changed = dev.set_ct_model_ch(ch, models[ch]) or changed
    if module_cfg["label"]:
        changed = dev.set_label(module_cfg["label"]) or changed
    if changed:
        dev.save_user_config()
        log.info("module 0x%02x provisioned and saved", dev.address)
    return changed
