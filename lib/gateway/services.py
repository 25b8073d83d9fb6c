"""The services beside metering and MQTT: the clock (NTP), energy per local day and month, setup
mode (the gateway's own access point) and the web page. Each is optional: ``start_services``
builds those the config and the board call for, sets them on the gateway (``gateway.timesync``,
``.calendar``, ``.setup``, ``.web``) and returns their tasks.

    from gateway.services import calendar_round, start_services

    tasks = start_services(gateway, network)   # after metering was built, before it starts
    ...
    calendar_round(gateway)                    # once a second or so, from the publisher

``network``: whether the gateway runs its network loop (Wi-Fi on a board, the PC's own network).
"""

CALENDAR_FILE = "calendar.json"


def start_services(gateway, network):
    cfg = gateway.config
    board = gateway.board
    log = gateway.log
    tasks = []
    gateway.calendar = _calendar(gateway)
    if network or board.name == "host":
        from gateway.timesync import TimeSync

        gateway.timesync = TimeSync(cfg, board, log, board.clock)
        tasks.append(_kept_apart(gateway.timesync.run(), "clock sync", log))
    calendar_round(gateway)  # the counters at boot, before metering adds to them
    if not cfg["web"]["enabled"]:
        return tasks
    address = board.web_address(cfg)
    if address is None:
        return tasks
    try:
        from gateway.setup_mode import SetupMode
        from gateway.web_server import WebServer

        gateway.setup = SetupMode(board, gateway.config_result, log)
        gateway.web = WebServer(gateway, address[0], address[1], log)  # adds setup's routes
    except Exception as exc:  # e.g. microdot not on the board: metering goes on without a page
        gateway.setup = gateway.web = None
        log.exception("web page and setup mode unavailable", exc)
        return tasks
    tasks.append(_kept_apart(gateway.setup.run(), "setup mode", log))
    tasks.append(_kept_apart(gateway.web.run(), "web page at %s:%d" % address, log))
    return tasks


async def _kept_apart(task, what, log):
    """Run a service; if it fails (a port another program holds, a bug), say so and let metering,
    the journal and MQTT go on: they run in the same task group."""
    try:
        await task
    except Exception as exc:
        log.exception("%s stopped; metering goes on without it" % what, exc)


def _calendar(gateway):
    """Day and month totals need the journal's counters (no journal: nothing to count from)."""
    path = gateway.board.path(CALENDAR_FILE)
    if gateway.store is None or path is None:
        return None  # (a board that keeps no files, as the benchmarks' own)
    from gateway.calendar_totals import CalendarTotals
    from gateway.localtime import parse_tz

    try:
        return CalendarTotals(path, parse_tz(gateway.config["tz"]), gateway.log)
    except Exception as exc:  # day totals are a convenience: metering goes on without them
        gateway.log.exception("day and month totals unavailable", exc)
        return None


def calendar_round(gateway):
    """Roll the day and month over when due; publish today's and yesterday's energy at a new
    day (and at the first known time)."""
    calendar = gateway.calendar
    if calendar is None:
        return
    timesync = gateway.timesync
    utc = timesync.utc_now() if timesync is not None else None
    before = (calendar.since_boot, calendar.day_key)
    calendar.update(gateway.metering.modules, utc)
    if (calendar.since_boot, calendar.day_key) != before:
        publish_energy_day(gateway)


def publish_energy_day(gateway):
    """Today's and yesterday's energy over MQTT (retained), once the clock is known."""
    calendar = gateway.calendar
    if calendar is None or gateway.link is None:
        return
    from gateway.payloads import energy_day

    payload = energy_day(calendar, gateway.metering.modules)
    if payload is not None:
        gateway.link.publish_energy_day(payload)
