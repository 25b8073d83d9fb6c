"""The gateway application: wires the board, the driver, the journal, metering and MQTT together.

``main()`` is what ``main.py`` calls. It never returns on a board: a fatal error is logged, the
energy is committed if at all possible, and the board resets. On the PC (host profile) Ctrl-C
shuts down in order: commit, ``offline``, exit.
"""

import asyncio
import sys

from gateway.identity import device_id
from gateway.provision import provision
from gateway.store import REASON_LAYOUT, REASON_PERIOD
from rbamp import RbAmp, RbAmpError

VERSION = "0.1.0"
SEED_TIMEOUT_MS = 3000
WATCHDOG_MS = 8000
STALL_MS = 5000  # the watchdog is fed only while samples keep coming
HEALTH_FIRST_MS = 30000
HEALTH_EVERY_MS = 600000
LIVE_EVERY_MS = 1000  # live values for the web page at most this often while someone watches
CALENDAR_EVERY_MS = 1000  # how often the day and month totals look at the clock
RESTART_DELAY_MS = 500  # the HTTP answer that asked for a restart leaves first
STOP_LINK_MS = 3000  # a restart waits this long at most for the "offline" message to go out
ANNOUNCED_TOPICS = "discovery_topics"  # the Home Assistant configs announced (gateway.discovery)


class Gateway:
    def __init__(self, board, config_result, log):
        self.board = board
        self.config_result = config_result
        self.config = config_result.config
        self.log = log
        self.clock = board.clock
        self.metering = None
        self.link = None
        self.store = None
        self.store_device = None
        self._v1_state = None
        self.device_id = None
        self._last_state_ms = None
        self._last_powers = {}
        self._seeded = False
        self.uptime_ms = 0
        self.version = VERSION
        # the optional services (gateway.services): None when off or not started yet
        self.calendar = None
        self.timesync = None
        self.setup = None
        self.web = None
        self.viewers = 0  # open live streams of the web page (the web server counts them)
        self._live = asyncio.Event()
        self._last_live_ms = None
        self._restarting = False

    # ------------------------------------------------------------------ set-up
    def _make_modules(self, state):
        """One MeteredModule per configured module, with the channel count, totals and resume
        point the journal and config.json hold: nothing here depends on who answers."""
        from gateway.layout import durable_channels, journal_totals
        from gateway.metering import MeteredModule

        cfg = self.config
        bus = self.board.i2c(cfg)
        channels, resume = durable_channels(cfg["modules"], state)
        modules = []
        for module_cfg in cfg["modules"]:
            address = module_cfg["address"]
            dev = RbAmp(bus, address, clock=self.clock)
            count = channels.get(address, 0)
            module = MeteredModule(dev, address, module_cfg["label"], count, resume.get(address))
            totals = journal_totals(state, address, count)
            if totals is not None and module.ledger is not None:
                module.ledger.restore(totals)
            modules.append(module)
        pin = self.board.drdy_pin(cfg)
        if pin is not None and modules:
            # attached now, begun or not: the sampler is paced by it from the module's first answer
            modules[0].dev.attach_drdy(pin)
        return modules

    def _module_started(self, module, learned):
        """Metering began a module (at boot or when it came back)."""
        for module_cfg in self.config["modules"]:
            if module_cfg["address"] == module.address:
                try:
                    provision(module.dev, module_cfg, self.log)
                except RbAmpError as exc:  # metering goes on; provisioning is tried at its next start
                    self.log.error("module %s: provisioning failed: %s", module.key, exc)
        if learned:
            self.log.info("module %s: %d channel(s), now part of the energy journal", module.key,
                          module.channels)
            if self._v1_state is not None:
                self._apply_layout(self._v1_state)
            elif self.metering is not None and self.metering.journal_hold is None:
                self.metering.maybe_commit(REASON_LAYOUT)
        if self.link is not None and self.config["homeassistant"]["discovery"]:
            # a module seen for the first time gets its sensors
            self.link.set_discovery(self._discovery, self._discovery_published)

    def _open_journal(self):
        """The journal and its newest record (None: empty). A newer format is left untouched (the
        caller meters without a journal); a region of foreign data is reclaimed."""
        from gateway.store import EnergyStore, JournalFormatError

        device = self.board.journal_device()
        self.store_device = device
        store = EnergyStore(device)
        try:
            state = store.load()
        except JournalFormatError as exc:
            if exc.kind != "foreign":
                raise
            # Left as it is, the error would reset the board on every boot.
            self.log.warning("journal region holds foreign data (%s); starting a new journal "
                             "(journal files are kept aside as <name>.foreign)", exc)
            self.store_device = self.board.reclaim_journal(device)
            store = EnergyStore(self.store_device)
            store.format()
            return store, None
        return store, state

    def _apply_layout(self, state):
        """Map the journal's totals onto the modules known now (gateway.layout). Totals leave the
        live journal only because config.json says so, and only after the old journal was kept
        aside; a version 1 journal that cannot be mapped yet is left untouched."""
        from gateway.layout import plan_layout

        metering = self.metering
        known = {}
        for module in metering.modules:
            if module.channels:
                known[module.address] = module.channels
        plan = plan_layout(self.config["modules"], state, known)
        if plan.deferred:
            self._v1_state = state
            metering.journal_hold = plan.deferred
            self.log.warning("%s", plan.deferred)
            return
        self._v1_state = None
        if plan.dropped and not self.config_result.ok:
            metering.journal_hold = ("config.json is not in use (%s): the journal is left as it is"
                                     % "; ".join(plan.dropped))
            self.log.warning("%s", metering.journal_hold)
            return
        if plan.dropped:
            try:
                kept = self.board.archive_journal(self.store_device, state.seq)
            except Exception as exc:  # nothing is dropped unless the old journal is safe
                metering.journal_hold = "could not keep the old journal aside (%s)" % exc
                self.log.error("energy journal left unchanged: %s; %s", metering.journal_hold,
                               "; ".join(plan.dropped))
                return
            for reason in plan.dropped:
                self.log.warning("journal: %s; the old journal is kept as %s", reason, kept)
        metering.journal_hold = None
        for module in metering.modules:
            totals = plan.totals.get(module.address)
            if totals is not None:
                metering.restore_module(module, totals)
        if plan.changed or plan.dropped:
            metering.maybe_commit(REASON_LAYOUT)

    # ------------------------------------------------------------------ payloads
    def state_payload(self):
        from gateway import payloads

        metering = self.metering
        board = self.board
        return payloads.state(metering.modules, self.uptime_ms, heap_used(), metering.samples,
                              metering.periods, self.config_result.safe_mode, self.config_result.error,
                              VERSION, board.wifi_rssi(), board.ip_address(),
                              payloads.journal_health(metering))

    def totals_payload(self):
        from gateway import payloads

        return payloads.totals(self.metering.modules)

    def _power_changed(self):
        threshold = self.config["publish"]["power_change_w"]
        changed = False
        for module in self.metering.modules:
            snap = module.snapshot
            if snap is None or not module.ready:
                continue
            for ch in range(module.channels):
                key = module.key + str(ch)
                power = module.power_now(ch)
                last = self._last_powers.get(key)
                if last is None or abs(power - last) >= threshold:
                    changed = True
        return changed

    def _remember_powers(self):
        for module in self.metering.modules:
            if module.snapshot is not None:
                for ch in range(module.channels):
                    self._last_powers[module.key + str(ch)] = module.power_now(ch)

    # ------------------------------------------------------------------ tasks
    async def publisher(self):
        """After every round of samples: publish the state when the interval is due or a power
        moved by the configured step; live values are read (by Metering) only then."""
        clock = self.clock
        interval_ms = int(self.config["publish"]["interval_s"] * 1000)
        sampled = self.metering.sampled
        from gateway.services import calendar_round

        last = clock.ticks_ms()
        calendar_due = 0
        while True:
            await sampled.wait()
            sampled.clear()
            now = clock.ticks_ms()
            elapsed = clock.ticks_diff(now, last)
            self.uptime_ms += elapsed  # accumulated: no ticks wrap after days
            last = now
            calendar_due -= elapsed
            if calendar_due <= 0:
                calendar_due = CALENDAR_EVERY_MS
                calendar_round(self)
            due = self._last_state_ms is None or clock.ticks_diff(clock.ticks_ms(), self._last_state_ms) >= interval_ms
            if self.link is not None:
                for module in self.metering.modules:
                    self.link.set_module_available(module.key, module.ready)
            publish = due or self._power_changed()
            watched = self.viewers > 0 and (self._last_live_ms is None or clock.ticks_diff(
                clock.ticks_ms(), self._last_live_ms) >= LIVE_EVERY_MS)
            if not publish and not watched:
                continue
            if publish:
                self._last_state_ms = clock.ticks_ms()
                self._remember_powers()
            if self.link is None and not self.viewers:
                continue
            self.metering.read_live()
            self._last_live_ms = clock.ticks_ms()
            self._live.set()  # every waiter is woken; later waiters wait for the next round
            self._live.clear()
            if publish and self.link is not None:
                self.link.publish_state(self.state_payload())

    async def wait_live(self):
        """Return after the next round of live values was read (the web page's live stream)."""
        await self._live.wait()

    def request_restart(self, reason):
        """Restart the gateway soon (after the HTTP answer that asked for it left): energy
        committed, "offline" published, then the board resets (on the PC the process exits and
        ``make run`` starts it again)."""
        if self._restarting:
            return
        self._restarting = True
        self.log.warning("restarting: %s", reason)
        asyncio.create_task(self._restart_later())

    async def _restart_later(self):
        await self.clock.asleep_ms(RESTART_DELAY_MS)
        try:
            if self.metering is not None:
                self.metering.commit_before_reset()
        except Exception as exc:  # the reset goes ahead: the journal keeps its last commit
            self.log.exception("could not commit before the restart", exc)
        if self.link is not None:
            try:
                await asyncio.wait_for(self.link.stop(graceful=True), STOP_LINK_MS / 1000)
            except Exception as exc:  # the broker publishes the last will instead
                self.log.warning("could not say offline before the restart: %s", exc)
        self.board.reset()

    def _on_period(self, record):
        from gateway.payloads import TS
        from gateway.services import publish_energy_day

        record[TS] = wall_time()
        if self.link is not None:
            self.link.publish_period(record)
            if self._seeded:
                self.link.publish_totals(self.totals_payload())
                publish_energy_day(self)

    async def watchdog(self):
        dog = self.board.watchdog(WATCHDOG_MS)
        if dog is None:
            return
        clock = self.clock
        last_samples = -1
        last_progress = clock.ticks_ms()
        while True:
            if self.metering.samples != last_samples:
                last_samples = self.metering.samples
                last_progress = clock.ticks_ms()
            if clock.ticks_diff(clock.ticks_ms(), last_progress) < STALL_MS:
                dog.feed()
            await clock.asleep_ms(1000)

    async def health(self):
        """A line on the console 30 s after boot and every 10 minutes: what someone at the USB
        console (or a test on the emulated chip) looks at first."""
        clock = self.clock
        await clock.asleep_ms(HEALTH_FIRST_MS)
        while True:
            metering = self.metering
            self.log.info("health: uptime %d s, heap free %s B, used %s B, samples %d, periods %d, "
                          "commits %d, commit errors %d, mains losses %d", self.uptime_ms // 1000,
                          heap_free(), heap_used(), metering.samples, metering.periods, metering.commits,
                          metering.commit_errors, metering.mains_losses)
            await clock.asleep_ms(HEALTH_EVERY_MS)

    async def network(self):
        from gateway.backoff import Backoff

        backoff = Backoff()
        setup = self.setup
        while True:
            if not self.board.network_ok():
                try:
                    await self.board.network_up(self.config, self.log)
                    backoff.reset()
                    self.log.info("network up")
                except OSError as exc:
                    if setup is not None:
                        setup.station_failed(str(exc))
                    if self.board.radio_failed:
                        self.log.error("network: %s; metering and the journal go on without the "
                                       "network; reset the board to try again", exc)
                        return
                    delay = backoff.next_delay_ms()
                    self.log.warning("network: %s; retry in %d ms", exc, delay)
                    await self.clock.asleep_ms(delay)
                    continue
            if setup is not None:
                setup.station_up()
            await self.clock.asleep_ms(5000)

    async def _seed_from_broker(self):
        """Published totals must never go backwards: the journal may lag what was published by
        up to the commit policy's step (and a wiped journal knows nothing), so the broker's
        retained totals, when it has them, are a floor. Totals are held back until this ran."""
        from gateway import payloads

        try:
            retained = await self.link.read_retained(payloads.TOTALS, SEED_TIMEOUT_MS)
        except Exception as exc:  # any trouble: publish from the journal alone
            self.log.warning("could not read the retained totals: %s", exc)
            retained = None
        before = self.metering.totals()
        for module in self.metering.modules:
            if module.ledger is None:
                continue
            counters = payloads.retained_counters(retained, module.key, module.channels)
            if counters is not None:
                raised_from = []
                module.ledger.append_totals(raised_from)
                self.metering.restore_module(module, counters)
                if self.calendar is not None:
                    self.calendar.raised(module, raised_from)  # no energy of today
        if self.metering.totals() != before:
            self.log.info("totals raised to the broker's retained values")
        self._seeded = True

    def _say_which_config(self):
        """The config in use and why, before anything names the device id it gives."""
        result = self.config_result
        if result.error:
            self.log.error("%s", result.error)
        if result.ok:
            self.log.info("config: %s", self.board.config_path)
        elif not result.safe_mode:
            self.log.warning("config: the last good copy %s, because %s cannot be used (above); "
                             "fix it and reset the board", self.board.last_good_path, self.board.config_path)
        else:
            self.log.warning("config: safe mode (no usable config.json and no last good copy): "
                             "metering and persisting only, no MQTT (a board with Wi-Fi opens setup mode)")

    async def run(self):
        from gateway.commit_policy import DEFAULT_HEADROOM, CommitPolicy
        from gateway.metering import Metering

        cfg = self.config
        self._say_which_config()
        state = None
        try:
            self.store, state = self._open_journal()
        except Exception as exc:  # no journal (or one this code must not write): meter on, say so
            self.store = None
            self.log.error("energy journal unavailable, totals are not kept: %s", exc)
        if not self.config_result.ok and state is not None and state.layout is not None:
            from gateway.layout import keep_journal_modules

            cfg["modules"] = keep_journal_modules(cfg["modules"], state)
            self.log.warning("config.json is not in use: the journal's modules are kept as they are")
        modules = self._make_modules(state)
        policy = None
        if self.store is not None:
            step = max(1, int(cfg["commit"]["growth_wh"] * 1000))
            policy = CommitPolicy(1, step=step, headroom=min(DEFAULT_HEADROOM, step // 2),
                                  interval_ms=cfg["commit"]["interval_s"] * 1000, clock=self.clock)
        # nothing is committed before the journal's layout is settled from durable facts
        metering = Metering(modules, self.clock, self.log, cfg["period_s"], store=self.store,
                            policy=policy, on_period=self._on_period, on_started=self._module_started,
                            mains_loss_v=cfg["mains_loss"]["voltage_v"],
                            period_seq=state.backlog_seq if state is not None else 0,
                            journal_hold="the journal's layout is not settled yet")
        self.metering = metering
        board = self.board
        network = not self.config_result.safe_mode and (cfg["mqtt"]["host"] is not None or (
            cfg["web"]["enabled"] and cfg["wifi"]["ssid"] is not None and board.joins_wifi))
        from gateway.services import start_services

        services = start_services(self, network)  # day totals see the counters before metering adds
        metering.start()
        if self.store is not None:
            self._apply_layout(state)
            if state is not None and self.store.seq == state.seq and metering.journal_hold is None:
                policy.committed(self.store.durable_totals(), state.backlog_seq)
            # what begin(resume=...) recovered from the modules is made durable at once
            metering.maybe_commit(REASON_PERIOD)
        self.device_id = device_id(self.config, self.board, modules, self.log)
        for module in modules:
            if not module.begun:
                self.log.warning("module %s does not answer (%s); its totals are kept and it is "
                                 "begun as soon as it does", module.key, module.error)
        tasks = [metering.sampler(), metering.period_loop(), metering.journal_upkeep(),
                 self.publisher(), self.watchdog(), self.health(), self.board.background()] + services
        if network:
            tasks.append(self.network())
        if not self.config_result.safe_mode and cfg["mqtt"]["host"] is not None:
            self.link = self._make_link(modules)
            tasks.append(self.link.run())
            tasks.append(self._seed_from_broker())
        self.log.info("gateway %s up: %d module(s), %d channel(s), device id %s", VERSION,
                      len(modules), metering.channel_count(), self.device_id)
        await asyncio.gather(*tasks)

    def _make_link(self, modules):
        from gateway.mqtt_link import MqttLink

        from gateway.backlog import Backlog, BacklogError

        cfg = self.config
        try:
            backlog = Backlog(self.board.path("backlog.bin"))
        except (BacklogError, OSError) as exc:
            self.log.error("period backlog file unusable (%s); keeping records in RAM", exc)
            backlog = None
        link = MqttLink(cfg["mqtt"], self.device_id, self.log, clock=self.clock, backlog=backlog)
        # period numbers continue after both the journal's and the backlog's last record
        if link.last_period_seq > self.metering.period_seq:
            self.metering.period_seq = link.last_period_seq
        ha = cfg["homeassistant"]
        if ha["discovery"]:
            link.set_ha_prefix(ha["prefix"])
            link.set_discovery(self._discovery, self._discovery_published)  # built when published
        for module in modules:
            link.set_module_available(module.key, module.ready)
        return link

    def _discovery(self):
        """Discovery of the modules begun since boot, and the removal of configs announced before
        that no longer exist. A module that has not answered yet keeps the sensors an earlier boot
        announced (retained); they show unavailable until it does."""
        from gateway.discovery import AnnouncedConfigs, discovery_messages, kept_topics

        infos = []
        for module in self.metering.modules:
            dev = module.dev
            infos.append({"address": module.address, "label": module.label, "begun": module.begun,
                          "variant": dev.variant, "channels": module.channels,
                          "has_voltage": dev.has_voltage, "fw_version": dev.version})
        origin = {"name": "rbamp-gateway", "sw_version": VERSION}
        prefix = self.config["homeassistant"]["prefix"]
        messages = discovery_messages(prefix, self.config["mqtt"]["base_topic"], self.device_id, infos, origin,
                                      day_totals=self._knows_days())
        announced = AnnouncedConfigs(self.board.path(ANNOUNCED_TOPICS), self.log)
        return announced.with_removals(messages, kept_topics(prefix, self.device_id, infos))

    def _knows_days(self):
        """Today's and yesterday's sensors only where the clock can be known (NTP on, or a PC)."""
        sync = self.timesync
        return self.calendar is not None and sync is not None and (sync.enabled or self.board.name == "host")

    def _discovery_published(self, messages):
        from gateway.discovery import AnnouncedConfigs

        AnnouncedConfigs(self.board.path(ANNOUNCED_TOPICS), self.log).published(messages)

    def shutdown(self):
        """Orderly stop: commit what changed. (The link's offline message is sent by stop().)"""
        if self.metering is not None:
            self.metering.commit_for_shutdown()


def heap_used():
    """Bytes of live heap after a collection (MicroPython); None elsewhere."""
    import gc

    if not hasattr(gc, "mem_alloc"):
        return None
    gc.collect()
    return gc.mem_alloc()


def heap_free():
    """Bytes of free heap after a collection (MicroPython); None elsewhere."""
    import gc

    if not hasattr(gc, "mem_free"):
        return None
    gc.collect()
    return gc.mem_free()


def wall_time():
    """Unix seconds if the clock is set (NTP on boards, always on a PC), else None."""
    import time

    now = time.time()
    if time.gmtime(0)[0] == 2000:  # ports whose epoch is 2000
        now += 946684800
    return int(now) if now > 1600000000 else None


# Needed only to load config.json; about 7 KB of RAM (mpy32) the running gateway can use.
CONFIG_LOADER_MODULES = ("gateway.config", "gateway.config_checker", "gateway.config_schema",
                         "gateway.config_secrets", "gateway.jsonstrict")


def let_go(names):
    """Drop modules nothing refers to any more, so the collector can reclaim them (a later
    import loads them again)."""
    import gc

    for name in names:
        sys.modules.pop(name, None)
        package, _, child = name.rpartition(".")
        parent = sys.modules.get(package)
        if parent is not None and hasattr(parent, child):
            delattr(parent, child)  # an import binds a submodule to its package too
    gc.collect()


def main():
    """Entry point for main.py."""
    from gateway.boards import detect
    from gateway.config import load_config, secret_values
    from gateway.log import Logger

    log = Logger()
    board = detect()
    result = load_config(board.config_path, board.last_good_path)
    log.set_level(result.config["log_level"])
    for secret in secret_values(result.config):
        log.add_secret(secret)
    for warning in result.warnings:
        log.warning("%s", warning)
    del load_config, secret_values
    let_go(CONFIG_LOADER_MODULES)
    gateway = Gateway(board, result, log)
    try:
        asyncio.run(gateway.run())
    except KeyboardInterrupt:
        log.info("stopping")
        gateway.shutdown()
        if gateway.link is not None:
            asyncio.run(gateway.link.stop(graceful=True))
        return
    except SystemExit:
        raise
    except BaseException as exc:  # the last line of defence on a board: log, save, reset
        log.exception("fatal error", exc)
        try:
            if gateway.metering is not None:
                gateway.metering.commit_before_reset()
        except Exception as commit_exc:
            log.exception("could not commit before reset", commit_exc)
        board.reset()


if __name__ == "__main__":
    main()
    sys.exit(0)
