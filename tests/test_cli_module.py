"""Host tests of ``rbamp scan``, ``info`` and ``read`` against the simulator, and of the errors every
command shares (bad options, missing bus, missing module): one line, the right exit code."""

import sys

import pytest
from rbamp_cli.sim import build
from rbamp_cli.values import load_spec, sim_specs
from support_cli import VIRTUAL, assert_one_line_error, cli, run_module


def session_of(spec="UI2@1.3", load="constant:1000,-300"):
    return build([sim_specs(spec)], load_spec(load), 100000, "virtual")


def test_read_json_matches_the_simulated_load(capsys):
    result = cli(capsys, "read", "--sim", "UI2@1.3", *VIRTUAL, "--load", "constant:1000,-300", "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert data["address"] == "0x50" and data["variant"] == "UI2" and data["protocol"] == "1.3"
    assert abs(data["voltage"] - 230.0) < 0.01
    assert abs(data["frequency"] - 50.0) < 0.01
    assert [ch["channel"] for ch in data["channels"]] == [1, 2]  # ch1.., as Home Assistant numbers them
    powers = [ch["power"] for ch in data["channels"]]
    assert abs(powers[0] - 1000.0) < 0.01 and abs(powers[1] + 300.0) < 0.01
    assert abs(data["channels"][0]["current"] - 1000.0 / 230.0) < 0.001
    # 59 bytes at 9 bits plus start/stop/restart at the default 50 kHz (README: keep the bus at 50 kHz)
    assert abs(data["bus_time_ms"] - (59 * 9 + 3) / 50.0) < 0.01


def test_read_text_on_protocol_1_2_and_a_current_only_module(capsys):
    result = cli(capsys, "read", "--sim", "UI1@1.2", *VIRTUAL, "--load", "constant:750")
    assert result.code == 0, result.err
    assert "rbAmp UI1 at 0x50 (protocol v1.2)" in result.out
    assert "voltage 230.0 V" in result.out and "750.0" in result.out
    result = cli(capsys, "read", "--sim", "I2", *VIRTUAL, "--load", "constant:750,200", "--json")
    data = result.json()
    assert data["voltage"] is None and [c["power"] for c in data["channels"]] == [0.0, 0.0]
    assert abs(data["channels"][1]["current"] - 200 / 230.0) < 0.001


def test_scan_lists_every_module_with_its_identity(capsys):
    session = session_of("UI1@1.2:0x60,UI3,I1@1.3")
    result = cli(capsys, "scan", "--json", session=session)
    assert result.code == 0, result.err
    modules = result.json()["modules"]
    assert [(m["address"], m["variant"], m["protocol"], m["channels"]) for m in modules] == [
        ("0x50", "UI3", "1.3", 3), ("0x51", "I1", "1.3", 1), ("0x60", "UI1", "1.2", 1)]
    by_addr = {m.addr: m for m in session.sim_modules}
    for m in modules:
        assert m["uid"] == by_addr[int(m["address"], 16)].uid.hex()
        assert m["provisioned"] is False
    text = cli(capsys, "scan", "--sim", "UI2@1.3,UI1@1.2", *VIRTUAL)
    assert text.code == 0 and "2 rbAmp module(s)" in text.out
    assert "0x51" in text.out and "v1.2" in text.out


def test_scan_lists_rbamp_modules_only_and_leaves_a_stranger_alone(capsys):
    session = session_of("UI2@1.3,UI1@1.3")
    stranger = session.sim_modules[1]
    stranger.regs[0x54] = 0x7E  # PRODUCT_ID of some other I2C device
    bus = session.bus
    calls = []

    def spy(name):
        method = getattr(bus, name)

        def call(addr, *rest):
            calls.append((name, addr))
            return method(addr, *rest)
        return call

    for name in ("read_byte_data", "write_byte_data", "write_i2c_block_data"):
        setattr(bus, name, spy(name))
    result = cli(capsys, "scan", session=session)
    assert result.code == 0, result.err
    rows = [line.split()[0] for line in result.out.splitlines() if line.startswith("0x")]
    assert rows == ["0x50"] and "1 rbAmp module(s)" in result.out
    assert "ignored 0x51: the device here is not an rbAmp" in result.out
    assert ("read_byte_data", 0x51) in calls and ("write_byte_data", 0x50) in calls
    assert [call for call in calls if call[1] == 0x51] == [("read_byte_data", 0x51)]  # PRODUCT_ID, then hands off


def test_info_reports_identity_and_diagnostics(capsys):
    session = session_of("UI2@1.3")
    result = cli(capsys, "info", "--json", session=session)
    assert result.code == 0, result.err
    info = result.json()
    module = session.sim_modules[0]
    assert info["uid"] == module.uid.hex() and info["channels"] == 2 and info["has_voltage"] is True
    assert info["sensor_class"] == 0 and info["ct_models"] == [0, 0] and info["label"] == ""
    assert info["reset_cause_name"] == "power-on"
    text = cli(capsys, "info", session=session)
    assert "sensor class 0 (unset)" in text.out and "CT ch1       none" in text.out and "CT ch2       none" in text.out
    assert "CT ch0" not in text.out  # channels are ch1.. as in Home Assistant and "CT ch2       none" in text.out
    assert "CT ch0" not in text.out  # channels are ch1.. as in Home Assistant


def test_help_explains_the_bus_choices_and_exit_codes(capsys):
    result = cli(capsys, "--help")
    assert result.code == 0
    for fragment in ("VARIANT@VERSION", "--sim-clock", "kernel", "exit codes", "journal", "config"):
        assert fragment in result.out, fragment


@pytest.mark.parametrize("argv,code,fragments", [
    (("read", "--sim", "UX2@1.3"), 2, ("unknown variant 'UX2'",)),
    (("read", "--sim", "UI2@1.4"), 2, ("protocol version '1.4'",)),
    (("read", "--sim", "UI2", "--addr", "0x78"), 2, ("out of range", "0x08..0x77")),
    (("read", "--sim", "UI2", "--addr", "fifty"), 2, ("not an I2C address",)),
    (("read", "--sim", "UI2:0x50,UI1:0x50", "--sim-clock", "virtual"), 1, ("two modules at 0x50",)),
    (("read", "--sim", "UI2", "--load", "solar"), 2, ("unknown load 'solar'",)),
    (("read", "--sim", "UI2", "--load", "constant:abc"), 2, ("powers are numbers",)),
    (("read",), 2, ("--bus N", "--sim")),
    (("read", "--bus", "1", "--load", "constant:5"), 2, ("only apply to --sim",)),
    (("read", "--bus", "1", "--sim", "UI2"), 2, ("--bus and --sim exclude each other",)),
    (("read", "--sim", "UI2", "--sim-clock", "virtual", "--addr", "0x51"), 1,
     ("no device acknowledges", "0x51", "bus scan: 0x50")),
    (("period", "--sim", "UI2", "--sim-clock", "virtual", "--every", "0"), 2, ("more than 0 s",)),
])
def test_user_mistakes_give_one_line_and_an_exit_code(capsys, argv, code, fragments):
    assert_one_line_error(cli(capsys, *argv), code, *fragments)


def test_bus_number_that_does_not_exist(capsys):
    result = cli(capsys, "scan", "--bus", "97")
    assert_one_line_error(result, 1, "/dev/i2c-97 does not exist", "--bus")


def test_missing_smbus2_is_one_line_with_the_install_command(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "smbus2", None)  # what a missing package looks like to import
    assert_one_line_error(cli(capsys, "info", "--bus", "1"), 1, "smbus2", "pip install 'rbamp[smbus]'")


def test_debug_shows_the_traceback_instead(capsys):
    from rbamp import RbAmpNotFoundError

    with pytest.raises(RbAmpNotFoundError):
        cli(capsys, "--debug", "read", "--sim", "UI2", *VIRTUAL, "--addr", "0x33")


def test_python_m_rbamp_cli_prints_no_traceback_for_user_mistakes():
    missing = run_module("info", "--sim", "UI2@1.3", *VIRTUAL, "--addr", "0x44")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.startswith("rbamp: error: module 0x44: no device acknowledges")
    assert missing.stderr.rstrip().endswith("(bus scan: 0x50)") and missing.stderr.count("\n") == 1
    usage = run_module("read", "--sim", "UI9")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr and "unknown variant" in usage.stderr
    assert usage.stderr.count("\n") == 1 and usage.stderr.startswith("rbamp: error: argument --sim")
    assert usage.stderr.rstrip().endswith("(see rbamp read --help)")
    before = run_module("--sim", "UI2", *VIRTUAL, "scan")  # the global options before the command
    assert before.returncode == 0 and "0x50     UI2" in before.stdout, before.stderr
    good = run_module("read", "--sim", "UI2@1.3", *VIRTUAL, "--load", "constant:1200", "--json")
    assert good.returncode == 0 and '"power": 1200.0' in good.stdout


def test_global_options_go_before_or_after_the_command(capsys):
    before = cli(capsys, "--sim", "UI2@1.3", *VIRTUAL, "--json", "--freq", "100000", "read")
    after = cli(capsys, "read", "--sim", "UI2@1.3", *VIRTUAL, "--json", "--freq", "100000")
    assert before.code == after.code == 0, before.err
    assert before.json()["bus_time_ms"] == after.json()["bus_time_ms"] == round((59 * 9 + 3) / 100.0, 2)
    assert before.json()["channels"][0]["power"] == after.json()["channels"][0]["power"]
    # given at both places: the value after the command wins, --sim lists add up
    mixed = cli(capsys, "--freq", "100000", "--sim", "UI2", *VIRTUAL, "--json", "scan", "--sim", "I1:0x52")
    assert mixed.code == 0, mixed.err
    assert [m["variant"] for m in mixed.json()["modules"]] == ["UI2", "I1"] and "100000 Hz" in mixed.json()["bus"]
    wins = cli(capsys, "--freq", "100000", "--sim", "UI2", *VIRTUAL, "--json", "read", "--freq", "50000")
    assert wins.json()["bus_time_ms"] == round((59 * 9 + 3) / 50.0, 2)
    assert_one_line_error(cli(capsys, "--sim", "UI2", "journal", "energy.img"), 2, "journal takes no bus options (--sim)")
    assert_one_line_error(cli(capsys, "--sim", "UI9", "scan"), 2, "unknown variant 'UI9'")


def test_usage_errors_are_one_line_naming_the_help_to_read(capsys):
    for argv, fragment in ((("read", "--sim", "UI2", "--addr"), "expected one argument"),
                           (("frobnicate",), "invalid choice: 'frobnicate'"),
                           ((), "required: COMMAND"),
                           (("period", "--sim", "UI2", "--count", "x"), "argument --count")):
        result = cli(capsys, *argv)
        assert result.code == 2 and result.out == "", (argv, result.out)
        assert result.err.count("\n") == 1 and result.err.startswith("rbamp: error: "), (argv, result.err)
        assert fragment in result.err and "--help)" in result.err, (argv, result.err)
