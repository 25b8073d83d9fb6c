"""Our Pico W image on the emulated chip (tools/picow): it boots, starts the gateway from the
filesystem's config.json, talks to the simulated module on the configured I2C pins, and its
flash writes persist across resets and cold boots.

Each test boots the real firmware in rp2040js; waits are console markers with emulated-time
deadlines, never wall-clock sleeps.
"""

import support_picow as picow

UP = "gateway 0.1.0 up"

CONFIG = {
    "device_id": "picow-test",
    "i2c": {"bus": 0, "scl": 5, "sda": 4, "freq": 50000},
    "drdy_pin": 6,
    "modules": [{"address": "0x50", "label": "mains"}],
    "period_s": 5,
    "commit": {"growth_wh": 1, "interval_s": 10},
    "ntp": {"enabled": False},
    "log_level": "info",
}
SIM = "UI2@1.3:0x50:1000,-300"


def gateway_files(config=CONFIG):
    """config.json, plus main.py while the image cannot start the gateway by itself."""
    files = {"config.json": config}
    if not picow.image_starts_gateway():
        with open(picow.os.path.join(picow.ROOT, "main.py")) as f:
            files["main.py"] = f.read()
    return files


def test_boots_to_gateway_up_then_repl(tmp_path):
    result = picow.run(tmp_path, files=gateway_files(), sims=[SIM], timeout_s=30,
                       steps=[{"wait": UP}, {"send": "\x03"}, {"wait": "MicroPython v1.25.0"}, {"wait": ">>> "}])
    assert result.exit == 0, result.explain()
    assert "gateway 0.1.0 up: 1 module(s)" in result.console, result.explain()
    assert "unreachable" not in result.console and "Traceback" not in result.console, result.explain()
    assert "rbAmp gateway (Pico W) with RP2040" in result.console
    assert result.reboots == 0
    print("boot to '%s' and back to the REPL: %.2f s emulated, %.1f s wall" % (UP, result.emulated_s, result.wall_s))


def test_i2c_behaves_like_silicon(tmp_path):
    """scan() sees the module (bit-banged probe), a missing address is EIO (not ETIMEDOUT), and
    DRDY pulses every 200 ms of emulated time on the configured pin."""
    code = "\n".join([
        "from machine import I2C, Pin",
        "import time",
        "i2c = I2C(0, scl=Pin(5), sda=Pin(4), freq=50000)",
        "print('scan', i2c.scan())",
        "print('version', i2c.readfrom_mem(0x50, 0x03, 1)[0])",  # VERSION register
        "for addr in (0x51, 0x50):",
        "    try:",
        "        i2c.writeto(addr, b'\\x00')",
        "        print('ack', hex(addr))",
        "    except OSError as e:",
        "        print('nack', hex(addr), e.errno)",
        "pulses = [0]",
        "def on_drdy(pin):",
        "    pulses[0] += 1",
        "Pin(6, Pin.IN).irq(on_drdy, Pin.IRQ_FALLING)",
        "time.sleep_ms(2000)",
        "print('drdy', pulses[0])",
    ])
    result = picow.run(tmp_path, files={"config.json": {"ntp": {"enabled": False}}}, sims=[SIM],
                       config=CONFIG, timeout_s=30,
                       steps=[{"send": "\x03"}, {"wait": ">>> "}, {"exec": code, "capture": "i2c"}])
    assert result.exit == 0, result.explain()
    out, err = result.exec_output("i2c")
    assert err == "", out + err
    lines = out.split("\n")
    assert "scan [80]" in lines
    assert "version 4" in lines  # the simulated module's protocol version 1.3
    assert "nack 0x51 5" in lines  # errno 5, EIO, as pico-sdk's PICO_ERROR_GENERIC gives
    assert "ack 0x50" in lines
    drdy = [int(line.split()[1]) for line in lines if line.startswith("drdy ")]
    assert drdy and 9 <= drdy[0] <= 11, out


def test_flash_writes_survive_reset_and_cold_boot(tmp_path):
    write = "with open('kept.txt', 'w') as f:\n    f.write('written on the emulated board')\nprint('ok')"
    read = "print(open('kept.txt').read())"
    first = picow.run(tmp_path / "first", files={"config.json": {"ntp": {"enabled": False}}}, timeout_s=30,
                      steps=[{"send": "\x03"}, {"wait": ">>> "},
                             {"exec": write, "capture": "write"},
                             # machine.reset(): the watchdog reboots the chip, flash as it was
                             {"send": "import machine; machine.reset()\r"},
                             {"boot": 2}, {"send": "\x03"}, {"wait": ">>> "},
                             {"exec": read, "capture": "after-reset"}])
    assert first.exit == 0, first.explain()
    assert first.reboots == 1
    assert first.exec_output("after-reset") == ("written on the emulated board\n", "")
    assert first.report["flash_ops"] > 0  # littlefs really programmed the flash model

    # cold boot: a new chip with the saved flash, no image loaded over it
    second = picow.run(tmp_path / "second", flash=first.flash, image=False, timeout_s=30,
                       steps=[{"send": "\x03"}, {"wait": ">>> "}, {"exec": read, "capture": "cold"}])
    assert second.exit == 0, second.explain()
    assert second.exec_output("cold") == ("written on the emulated board\n", "")
