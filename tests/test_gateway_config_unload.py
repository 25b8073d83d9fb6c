RUNTIMES = ("mpy64", "mpy32")

import gc
import sys

_ROOT = __file__.rsplit("/", 2)[0] if __file__.count("/") >= 2 else "."


def test_the_config_loader_is_let_go_after_boot_and_the_result_stays_usable():
    import gateway.app as app
    from gateway.config import load_config

    result = load_config(_ROOT + "/config.example.json")
    del load_config
    gc.collect()
    before = gc.mem_alloc()
    app.let_go(app.CONFIG_LOADER_MODULES)
    after = gc.mem_alloc()
    for name in app.CONFIG_LOADER_MODULES:
        assert name not in sys.modules, name
        assert not hasattr(sys.modules["gateway"], name.split(".")[1]), name
    # the loader's modules held several KB the running gateway never uses again
    assert before - after > 4096, (before, after)
    assert result.ok and result.config["mqtt"]["port"] == 1883, result
    # anything that needs the loader later (a settings page) imports it again
    from gateway.config import parse_config

    assert parse_config({"mqtt": {"host": "broker"}})["mqtt"]["host"] == "broker"
