"""rbAmp gateway firmware: metering, the energy journal and MQTT publishing, one concern per module.

Importing this package does nothing; ``main.py`` calls ``gateway.app.main()``, which finds the
board profile, loads config.json and runs ``Gateway``.

- the application: ``app`` (wiring and the asyncio tasks), ``identity`` (the device id),
  ``provision`` (a module's own settings from config.json)
- boards: ``board_profile`` (the ``Board`` base: paths, I2C, pins, Wi-Fi, watchdog), ``boards``
  (Pico W and ESP32 profiles, ``detect()``; on any other platform the PC profile ``hostboard``,
  which lives in tools/ and is never frozen)
- config.json: ``config`` (file, last good copy, safe-mode salvage; the running gateway lets it
  go after boot), ``config_result`` (what loading gave), ``jsonstrict`` (the strict JSON reader),
  ``config_schema`` (one table row per key), ``config_checker`` (the checker that reads the
  table), ``config_secrets`` (what never reaches a log)
- metering: ``metering`` (DRDY-paced sampling, period latches, commits, mains loss),
  ``ledger`` (one module's counters, their names and the journal order)
- the journal: ``store`` (power-cut-proof records on flash), ``layout`` (whose counters are where),
  ``commit_policy`` (when to commit), ``flashdev`` (block devices over files)
- MQTT: ``mqtt_wire`` (sockets, TLS, packets; the only module that knows umqtt.simple),
  ``mqtt_link`` (session: connect, backoff, last will, subscriptions, backlog delivery),
  ``payloads`` (topic names, payload keys and builders), ``discovery`` (Home Assistant configs),
  ``backlog`` (period records kept until the broker has them), ``backoff``
- ``log``: the console log with secrets scrubbed
- beside metering and MQTT (``services`` builds them from config.json): ``localtime`` (POSIX TZ
  rules), ``timesync`` (SNTP), ``calendar_totals`` (today / yesterday / month per channel);
  the web page: ``web_server`` (microdot behind a guard), ``web_request`` (limits, the request
  read before microdot sees it), ``web_api`` (routes, live stream), ``web_auth`` (password,
  sessions, cross-site guard), ``web_state`` (the state document), ``web_page`` (the page),
  ``config_editor`` (config.json edited safely); setup mode: ``setup_mode``, ``captive_dns``,
  ``web_setup``

The energy journal on its own (as ``rbamp journal`` uses it)::

    from gateway.store import EnergyStore
    from gateway.flashdev import FileBlockDevice

    store = EnergyStore(FileBlockDevice("energy.img", 4096, 16))
    state = store.load()                       # None on a blank device
    print(state.layout, state.totals)          # [(0x50, 2)], mWh: import, export per channel
"""
