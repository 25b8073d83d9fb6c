"""Host tests of ``rbamp provision`` and ``set-address``: several commands act on one simulated bus,
so what one command wrote is checked by the next one (and after a module power cycle)."""

from rbamp_cli.sim import build
from rbamp_cli.values import load_spec, sim_specs
from support_cli import assert_one_line_error, cli


def session_of(spec="UI2@1.3"):
    return build([sim_specs(spec)], load_spec("constant:800,200"), 100000, "virtual")


def power_cycle(session):
    for module in session.sim_modules:
        module.power_cycle()
    session.clock.advance_ms(300)


def test_provision_is_saved_verified_and_visible_in_info(capsys):
    for spec in ("UI2@1.3", "UI2@1.2"):
        session = session_of(spec)
        result = cli(capsys, "provision", "--class", "sct013", "--ct", "1=SCT-013-030", "--ct", "ch2=20A",
                     "--label", "mains", "--json", session=session)
        assert result.code == 0, result.err
        report = result.json()
        assert report["saved"] is True and report["verified"] is True
        assert report["after"] == {"sensor_class": 1, "ct_models": [3, 6], "label": "mains"}
        assert len(report["changed"]) == 4
        power_cycle(session)  # what info shows now comes from the module's flash
        info = cli(capsys, "info", "--json", session=session).json()
        assert (info["sensor_class"], info["ct_models"], info["label"]) == (1, [3, 6], "mains")
        assert info["ct_model_names"] == ["SCT-013-030", "SCT-013-020"] and info["provisioned"] is True
        again = cli(capsys, "provision", "--class", "1", "--ct", "1=3", "--ct", "2=6", "--label", "mains",
                    session=session)
        assert again.code == 0 and "already provisioned, nothing written" in again.out
        assert "saved" not in again.out.split("verified")[0]


def test_provision_one_model_for_every_channel(capsys):
    session = session_of("UI3@1.3")
    result = cli(capsys, "provision", "--class", "sct013", "--ct", "SCT-013-050", session=session)
    assert result.code == 0, result.err
    assert "CT ch2 none -> SCT-013-050" in result.out and "saved to the module's flash" in result.out
    assert cli(capsys, "info", "--json", session=session).json()["ct_models"] == [4, 4, 4]


def test_provision_refuses_bad_input_before_writing_anything(capsys):
    session = session_of("UI2@1.3")
    writes_before = session.sim_modules[0].flash_writes
    assert_one_line_error(cli(capsys, "provision", "--class", "2", "--ct", "1=3", session=session), 1,
                          "CT models apply to sensor class 1", "nothing was written")
    assert_one_line_error(cli(capsys, "provision", "--ct", "1=3", session=session), 1, "class is 0")
    # channels are numbered ch1.. as in Home Assistant; the range named is the module's own
    for channel in ("3", "5"):
        assert_one_line_error(cli(capsys, "provision", "--class", "1", "--ct", channel + "=3", session=session), 1,
                              "--ct %s=...: this UI2 has ch1..ch2; nothing was written" % channel)
    assert_one_line_error(cli(capsys, "provision", "--class", "1", "--ct", "0=3", session=session), 2,
                          "channels are numbered from 1")
    assert_one_line_error(cli(capsys, "provision", "--class", "1", "--ct", "1=3", "--ct", "1=4", session=session),
                          2, "ch1 two different models")
    assert_one_line_error(cli(capsys, "provision", "--ct", "1=9", session=session), 2, "CT model '9'")
    assert_one_line_error(cli(capsys, "provision", "--label", "much-too-long", session=session), 2, "8 printable")
    assert_one_line_error(cli(capsys, "provision", "--class", "7", session=session), 2, "sensor class '7'")
    assert_one_line_error(cli(capsys, "provision", session=session), 2, "nothing to provision")
    info = cli(capsys, "info", "--json", session=session).json()
    assert (info["sensor_class"], info["ct_models"], info["label"]) == (0, [0, 0], "")
    assert session.sim_modules[0].flash_writes == writes_before


def test_set_address_moves_the_module(capsys):
    session = session_of("UI2@1.3,UI1@1.2:0x52")
    result = cli(capsys, "set-address", "0x50", "0x51", session=session)
    assert result.code == 0, result.err
    assert "moved to 0x51; bus now: 0x51, 0x52" in result.out
    assert cli(capsys, "info", "--addr", "0x51", "--json", session=session).json()["variant"] == "UI2"
    assert_one_line_error(cli(capsys, "read", "--addr", "0x50", session=session), 1, "no device acknowledges")
    power_cycle(session)  # the new address is kept in the module's flash
    scan = cli(capsys, "scan", "--json", session=session).json()
    assert [m["address"] for m in scan["modules"]] == ["0x51", "0x52"]
    same = cli(capsys, "set-address", "0x51", "0x51", session=session)
    assert same.code == 0 and "already at 0x51" in same.out


def test_set_address_refuses_a_taken_or_empty_address(capsys):
    session = session_of("UI2@1.3,UI1@1.3")
    assert_one_line_error(cli(capsys, "set-address", "0x50", "0x51", session=session), 1, "0x51 is already taken")
    assert_one_line_error(cli(capsys, "set-address", "0x40", "0x41", session=session), 1, "no device acknowledges")
    assert_one_line_error(cli(capsys, "set-address", "0x50", "0x7F", session=session), 2, "out of range")
    scan = cli(capsys, "scan", "--json", session=session).json()
    assert [m["address"] for m in scan["modules"]] == ["0x50", "0x51"]
