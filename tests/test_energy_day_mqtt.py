"""The link publishes today's and yesterday's energy retained on <base>/<id>/energy_day, the newest
queued payload only, at the link's QoS, against a real broker (mosquitto, started by the harness)."""

RUNTIMES = ("cpython", "mpy64", "mpy32")
NEEDS_BROKER = True

import json

import support_broker as sb

try:
    import asyncio
except ImportError:
    asyncio = None


def test_energy_day_goes_out_retained_and_only_the_newest():
    sb.install_umqtt_names()
    from gateway.mqtt_link import MqttLink

    link = MqttLink(sb.mqtt_config(), sb.unique("day"), sb.ListLog(), rng_seed=7)
    topic = link.topic("energy_day")
    first = {"date": "2026-12-01", "modules": {"0x50": {"today_import_wh": [1.0]}}}
    newest = {"date": "2026-12-02", "modules": {"0x50": {"today_import_wh": [0.0]}}}
    link.publish_energy_day(first)
    link.publish_energy_day(newest)  # queued before the connection: only this one goes out

    async def main():
        observer = sb.Observer(topic)
        task = asyncio.create_task(link.run())
        try:
            await sb.wait_until(lambda: observer.payloads(topic), 5000, "energy_day", observer)
            later = {"date": "2026-12-02", "modules": {"0x50": {"today_import_wh": [2.5]}}}
            link.publish_energy_day(later)
            await sb.wait_until(lambda: len(observer.payloads(topic)) == 2, 5000, "the update", observer)
        finally:
            await sb.finish(link, task, graceful=True)
            observer.close()
        assert [json.loads(p)["modules"]["0x50"]["today_import_wh"] for p in observer.payloads(topic)] == [
            [0.0], [2.5]]

    sb.run(main())
    assert json.loads(sb.retained(topic)) == {"date": "2026-12-02", "modules": {"0x50": {"today_import_wh": [2.5]}}}
