"""Home Assistant configs that no longer exist are removed from a real broker (mosquitto, started
by the harness): the link publishes the empty retained configs that gateway.discovery's
AnnouncedConfigs adds, and reports the round so the file forgets them. An independent client
(support_broker.Observer) checks what the broker keeps."""

RUNTIMES = ("cpython", "mpy64", "mpy32")
NEEDS_BROKER = True

import support_broker as sb
import xrt

try:
    import asyncio
except ImportError:
    asyncio = None

ORIGIN = {"name": "rbamp-gateway", "sw_version": "0.1.0"}
MODULES = [{"address": 0x50, "label": "house", "channels": 1, "has_voltage": True},
           {"address": 0x51, "label": None, "channels": 2, "has_voltage": False}]


def _announced(name):
    import os

    from gateway.discovery import AnnouncedConfigs

    path = xrt.tmp_path(sb.unique(name))
    for p in (path, path + ".tmp"):
        try:
            os.remove(p)
        except OSError:
            pass
    return AnnouncedConfigs(path, sb.ListLog())


def test_configs_of_a_removed_module_and_an_old_device_id_disappear_from_the_broker():
    from gateway.discovery import discovery_messages
    from gateway.mqtt_link import MqttLink

    sb.install_umqtt_names()
    prefix = sb.unique("ha")
    old_id = sb.unique("gw-old")
    new_id = sb.unique("gw-new")
    announced = _announced("announced")
    cfg = sb.mqtt_config()
    old = discovery_messages(prefix, cfg["base_topic"], old_id, MODULES, ORIGIN)
    # an earlier boot: the old id with both modules, published retained and remembered
    feeder = sb.Observer()
    for topic, payload in announced.with_removals(old):
        feeder.publish(topic, payload, retain=True)
    feeder.close()
    announced.published(old)
    gone = [topic for topic, _ in old]
    assert sb.retained(gone[-1]) is not None
    # this boot: another device id (set in config.json) and module 0x51 left config.json
    new = discovery_messages(prefix, cfg["base_topic"], new_id, MODULES[:1], ORIGIN)
    rounds = []

    def published(messages):
        rounds.append(len(messages))
        announced.published(messages)

    link = MqttLink(cfg, new_id, sb.ListLog(), rng_seed=3)
    link.set_ha_prefix(prefix)
    link.set_discovery(lambda: announced.with_removals(new), published)

    async def main():
        observer = sb.Observer(prefix + "/#")  # also gets the old configs, retained

        def removals():
            return [t for t, p in observer.messages if p == b""]

        task = asyncio.create_task(link.run())
        try:
            await sb.wait_until(lambda: rounds, 5000, "a complete discovery round", observer)
            await sb.wait_until(lambda: len(removals()) >= len(gone), 5000, "the removals", observer)
            observer.sync()  # anything else the round sent has arrived too
        finally:
            await sb.finish(link, task, graceful=True)
            observer.close()
        assert sorted(removals()) == sorted(gone), removals()
        configs = [t for t, p in observer.messages if p and t.split("/")[0] == prefix and t.split("/")[2] == new_id]
        assert sorted(configs) == sorted(t for t, _ in new), configs

    sb.run(main())
    assert rounds == [len(old) + len(new)]
    for topic in (gone[0], gone[-1]):  # the old id's gateway diagnostic and 0x51's last sensor
        assert sb.retained(topic) is None, topic
    assert sb.retained(new[0][0]) == new[0][1].encode()
    assert announced.topics() == [topic for topic, _ in new]  # the removals are forgotten
