RUNTIMES = ("cpython", "mpy64", "mpy32")

from gateway.config import parse_config

_ROOT = __file__.rsplit("/", 2)[0] if __file__.count("/") >= 2 else "."


def _read(name):
    with open(_ROOT + "/" + name) as f:
        return f.read()


def test_make_run_host_config_is_valid():
    config = parse_config(_read("tools/host_config.json"))
    assert config["period_s"] == 10 and config["modules"][0]["address"] == 0x50


def test_board_files_are_tiny_and_start_the_gateway():
    boot = _read("boot.py")
    main = _read("main.py")
    assert "gateway.app import main" in main and "main()" in main
    assert len(boot.splitlines()) < 10 and "asyncio" not in boot
