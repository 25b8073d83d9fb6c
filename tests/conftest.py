"""Fixtures shared by the host-side tests: a real MQTT broker, gateways stopped at the end."""

import pytest
from support_e2e import require
from xrt import broker as xbroker


@pytest.fixture
def broker(tmp_path):
    """A real mosquitto for one test (required in CI, where .ci/run installs it)."""
    require(xbroker.mosquitto_path(), "mosquitto")
    b = xbroker.Broker(str(tmp_path / "broker"), kind="mosquitto")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def gateways():
    """Gateways (support_e2e.Gateway) a test appends here are stopped, with their simulators."""
    made = []
    yield made
    for gateway in made:
        gateway.stop()
