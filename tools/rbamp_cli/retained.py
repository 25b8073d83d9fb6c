"""Retained messages on an MQTT broker, read and cleared from the host (paho-mqtt).

    with RetainedClient("192.168.1.10", 1883) as broker:
        found = broker.read(["rbamp/house/totals", "rbamp/house/availability"])   # {topic: bytes}
        broker.clear("rbamp/house/totals")       # an empty retained message: the broker drops it

``read`` knows when the retained messages are all in without waiting on a timer: it subscribes
to the topics and to an echo topic of its own in one SUBSCRIBE, then publishes to the echo topic.
A broker sends a subscription's retained messages when it takes the subscription, before it
forwards anything published later on the same connection, so once the echo is back nothing
retained is still on its way.
"""

import os

from rbamp_cli.errors import CliError

TIMEOUT_S = 10.0
_STEP_S = 0.05


def _paho():
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise CliError("this command needs the paho-mqtt package, which is not installed: pip install 'rbamp[mqtt]' (or paho-mqtt)")
    return mqtt


class RetainedClient:
    def __init__(self, host, port, user=None, password=None, tls=False, ca_file=None):
        import time

        self.host = host
        self.port = port
        self._time = time.monotonic
        mqtt = _paho()
        self._mqtt = mqtt
        self._echo = "rbamp-cli/echo/%s" % os.urandom(6).hex()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="rbamp-cli-" + os.urandom(4).hex(),
                                   clean_session=True)
        if user is not None:
            self._client.username_pw_set(user, password)
        if tls:
            self._client.tls_set(ca_certs=ca_file)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._connack = None
        self._suback = False
        self._messages = {}
        self._echoed = False

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def __enter__(self):
        try:
            self._client.connect(self.host, self.port, keepalive=30)
        except OSError as exc:
            raise CliError("cannot reach the MQTT broker at %s: %s" % (self.address, exc.strerror or exc))
        self._wait(lambda: self._connack is not None, "the broker's answer to CONNECT")
        if self._connack.is_failure:
            raise CliError("the MQTT broker at %s refused the connection: %s" % (self.address, self._connack))
        return self

    def __exit__(self, *exc_info):
        self._client.disconnect()
        return False

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self._connack = reason_code

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        self._suback = True

    def _on_message(self, client, userdata, message):
        if message.topic == self._echo:
            self._echoed = True
        elif message.retain:
            self._messages[message.topic] = bytes(message.payload)

    def _wait(self, done, what):
        deadline = self._time() + TIMEOUT_S
        while not done():
            if self._time() > deadline:
                raise CliError("no answer from the MQTT broker at %s within %d s (waiting for %s)" % (
                    self.address, TIMEOUT_S, what))
            code = self._client.loop(timeout=_STEP_S)
            if code not in (self._mqtt.MQTT_ERR_SUCCESS, self._mqtt.MQTT_ERR_AGAIN):
                raise CliError("lost the MQTT broker at %s: %s" % (self.address, self._mqtt.error_string(code)))

    def read(self, topics):
        """{topic: payload} of the retained messages the broker holds on ``topics``."""
        self._messages = {}
        self._echoed = False
        self._suback = False
        self._client.subscribe([(topic, 1) for topic in topics] + [(self._echo, 1)])
        self._wait(lambda: self._suback, "SUBACK")
        self._client.publish(self._echo, b"", qos=1)
        self._wait(lambda: self._echoed, "the echo of its own message")
        self._client.unsubscribe(list(topics) + [self._echo])
        return dict(self._messages)

    def clear(self, topic):
        """Publish an empty retained message (QoS 1): the broker deletes what it keeps there."""
        info = self._client.publish(topic, b"", qos=1, retain=True)
        self._wait(info.is_published, "PUBACK")
