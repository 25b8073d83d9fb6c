#!/usr/bin/env node
// An emulated Raspberry Pi Pico W that boots a real MicroPython image (rp2040js, installed into
// .cache/picow by tools/picow/setup.sh), with what the gateway needs around it:
//
//   - a NOR flash model behind the SSI (flash.mjs), so littlefs and the energy journal persist,
//     with power cuts at the Nth erase/program, whole or partial;
//   - the simulated rbAmp modules (tools/rbampsim, in a Python child: simbridge.py) on the I2C
//     pins config.json names, clocked by emulated time, DRDY on its GPIO (bridge.mjs);
//   - chip resets (watchdog, machine.reset()) that reboot with the same flash;
//   - the USB-CDC console captured, and a host that only arms OUT transfers when it has bytes to
//     send (rp2040js answers every armed OUT endpoint at once, an interrupt storm that keeps the
//     core from ever idling).
//
// The USB console goes to stdout; the runner's own lines go to stderr, prefixed "[picow]".
// Usage: node tools/picow/run.mjs --help
//
// Exit codes: 0 every step done (or --until seen), 3 emulated deadline, 4 wall-clock deadline,
// 2 bad usage, 1 internal error. A JSON report (--report) holds the details either way.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { I2CBridge, SimProcess } from './bridge.mjs';
import { FLASH_SIZE, NorFlash, attachFlash } from './flash.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const CACHE = path.join(ROOT, '.cache', 'picow');

export const LAYOUT = {
  // firmware/boards/RBAMP_PICO_W: the 848 KiB storage region at the end of the 2 MiB flash,
  // the journal in its first 64 KiB, littlefs on the rest
  journalStart: 0x12c000,
  journalLength: 0x10000,
  fsStart: 0x13c000,
  fsLength: 196 * 4096,
};

const USAGE = `usage: node tools/picow/run.mjs [options]
  --image FILE.uf2        firmware to load into flash (omit to boot --flash as it is)
  --flash FILE            initial flash contents (a dump saved by --save-flash)
  --fs FILE               littlefs image to write at the filesystem offset (0x${LAYOUT.fsStart.toString(16)})
  --config FILE           config.json: I2C bus, pins and drdy_pin for the simulated modules
  --sim SPEC              a simulated module, VARIANT@VERSION:ADDR[:W0,W1,..] (repeatable)
  --event SPEC            SECONDS:KIND:ADDR[:ARG..] (unplug, plug, reboot, power-cycle, nack,
                          nack-rate, ghost, stuck, unstuck; see simbridge.py)
  --step JSON             {"wait": TEXT[, "capture": NAME]} | {"send": TEXT} | {"run_s": S}
                          | {"boot": N} (the Nth boot has begun) | {"exec": CODE, "capture":
                          NAME} (raw REPL, back to the friendly REPL after), in order (repeatable)
  --until TEXT            a last step: wait for TEXT on the console
  --cut N[:FRACTION]      power cut at the Nth flash erase/program of a boot (repeatable: one per
                          boot, in order); FRACTION of it lands (default: a random 0..1)
  --cut-seed N            seed for the random fractions (default 1)
  --cut-dump DIR          save the flash at each cut as DIR/cut-K.bin
  --dump-range START:LEN  part of the flash those dumps and --save-flash hold (default all 2 MiB)
  --timeout-s S           emulated-time deadline (default 60)
  --wall-timeout-s S      wall-clock deadline (default 600)
  --save-flash FILE       flash contents at the end
  --save-journal FILE     the energy journal's 64 KiB at the end (for \`rbamp journal FILE\`)
  --report FILE           JSON report: exit, times, boots, reboots, cuts, captures (and the
                          emulated time each matched: capture_s), sim truth
  --python EXE            Python for the simulated modules (default .venv/bin/python)
  --quiet                 do not echo the console to stdout
  --timestamps            log every console chunk with its emulated time (stderr)
  --progress              log the emulated time and PC every 2 s of wall time (stderr)
  --stock-cdc             rp2040js's own CDC host (OUT always armed: the interrupt storm), to compare`;

function fail(message) {
  process.stderr.write(`[picow] ${message}\n${USAGE}\n`);
  process.exit(2);
}

function parseCli(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      image: { type: 'string' },
      flash: { type: 'string' },
      fs: { type: 'string' },
      config: { type: 'string' },
      sim: { type: 'string', multiple: true, default: [] },
      event: { type: 'string', multiple: true, default: [] },
      step: { type: 'string', multiple: true, default: [] },
      until: { type: 'string' },
      cut: { type: 'string', multiple: true, default: [] },
      'cut-seed': { type: 'string', default: '1' },
      'cut-dump': { type: 'string' },
      'dump-range': { type: 'string' },
      'timeout-s': { type: 'string', default: '60' },
      'wall-timeout-s': { type: 'string', default: '600' },
      'save-flash': { type: 'string' },
      'save-journal': { type: 'string' },
      report: { type: 'string' },
      python: { type: 'string' },
      quiet: { type: 'boolean', default: false },
      timestamps: { type: 'boolean', default: false },
      'stock-cdc': { type: 'boolean', default: false },
      progress: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    process.exit(0);
  }
  if (!values.image && !values.flash) fail('give --image and/or --flash');
  return values;
}

function loadUf2(file, memory) {
  const data = fs.readFileSync(file);
  for (let offset = 0; offset + 512 <= data.length; offset += 512) {
    const magic0 = data.readUInt32LE(offset);
    const magic1 = data.readUInt32LE(offset + 4);
    if (magic0 !== 0x0a324655 || magic1 !== 0x9e5d5157) {
      throw new Error(`${file}: not a UF2 block at ${offset}`);
    }
    const target = data.readUInt32LE(offset + 12);
    const size = data.readUInt32LE(offset + 16);
    if (target < 0x10000000 || target + size > 0x10000000 + FLASH_SIZE) {
      throw new Error(`${file}: block for 0x${target.toString(16)} is outside the flash`);
    }
    memory.set(data.subarray(offset + 32, offset + 32 + size), target - 0x10000000);
  }
}

/** Steps: the console script. Text waits search the console output that came after the last match. */
function parseSteps(values) {
  const steps = [];
  for (const text of values.step) {
    const step = JSON.parse(text);
    if (step.exec !== undefined) {
      // raw REPL: Ctrl-A, the code, Ctrl-D; the reply is "OK" out \x04 err \x04 ">"; Ctrl-B leaves
      steps.push({ send: '\r\x01' });
      steps.push({ wait: 'raw REPL; CTRL-B to exit\r\n>' });
      steps.push({ send: step.exec + '\x04' });
      steps.push({ wait: '\x04>', capture: step.capture ?? `exec${steps.length}` });
      steps.push({ send: '\x02' });
      steps.push({ wait: '>>> ' });
    } else {
      steps.push(step);
    }
  }
  if (values.until !== undefined) steps.push({ wait: values.until });
  return steps;
}

async function importEmulator() {
  const dist = path.join(CACHE, 'rp2040js-1.3.3', 'dist', 'esm');
  if (!fs.existsSync(path.join(dist, 'index.js'))) {
    throw new Error(`rp2040js is not installed in ${dist}: run tools/picow/setup.sh`);
  }
  const lib = await import(pathToFileURL(path.join(dist, 'index.js')).href);
  const clock = await import(pathToFileURL(path.join(dist, 'clock', 'simulation-clock.js')).href);
  const logging = await import(pathToFileURL(path.join(dist, 'utils', 'logging.js')).href);
  return { ...lib, ...clock, ...logging };
}

class Console {
  constructor(echo) {
    this.echo = echo;
    this.all = [];
    this.text = ''; // output since the last matched wait
    this.boot = '';
  }

  output(bytes) {
    if (this.timestamps) process.stderr.write(`[picow] console at ${this.now()} s: ${JSON.stringify(Buffer.from(bytes).toString('latin1'))}\n`);
    if (this.echo) fs.writeSync(1, bytes);
    const text = Buffer.from(bytes).toString('latin1');
    this.all.push(text);
    this.text += text;
    this.boot += text;
  }
}

/** The USB host side: enumerates the CDC device, captures its output, types our input. */
function attachUsb(emu, rp2040, consoleSink, input, stockHost) {
  const cdc = new emu.USBCDC(rp2040.usbCtrl);
  const usb = rp2040.usbCtrl;
  const deliver = usb.onEndpointRead; // rp2040js's CDC host: answers at once from its FIFO
  let held = null;
  const feed = () => {
    const n = Math.min(held.size, input.length);
    for (let i = 0; i < n; i++) cdc.sendSerialByte(input.shift());
    const endpoint = held.endpoint;
    const size = held.size;
    held = null;
    deliver(endpoint, size);
  };
  usb.onEndpointRead = (endpoint, size) => {
    if (endpoint !== 0 && input.length === 0 && !stockHost) {
      held = { endpoint, size }; // answered when there is something to type
      return;
    }
    held = { endpoint, size };
    feed();
  };
  cdc.onSerialData = (bytes) => consoleSink.output(bytes);
  return {
    kick() {
      if (held && input.length) feed();
    },
  };
}

function randomFractions(seed) {
  let state = (seed * 2654435761) >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 4294967296;
  };
}

async function main() {
  const values = parseCli(process.argv.slice(2));
  const emu = await importEmulator();
  const config = values.config ? JSON.parse(fs.readFileSync(values.config, 'utf8')) : {};
  const i2cCfg = config.i2c ?? {};
  const bus = i2cCfg.bus ?? 0;
  const scl = i2cCfg.scl ?? (bus === 0 ? 5 : 7); // MicroPython's rp2 defaults
  const sda = i2cCfg.sda ?? (bus === 0 ? 4 : 6);
  const freq = i2cCfg.freq ?? 50000;
  const drdyPin = config.drdy_pin ?? null;
  const steps = parseSteps(values);
  const timeoutUs = Number(values['timeout-s']) * 1e6;
  const wallTimeoutMs = Number(values['wall-timeout-s']) * 1000;
  const random = randomFractions(Number(values['cut-seed']));
  const cuts = values.cut.map((spec) => {
    const [at, fraction] = spec.split(':');
    return { at: Number(at), fraction: fraction === undefined ? random() : Number(fraction) };
  });
  let dumpStart = 0;
  let dumpLength = FLASH_SIZE;
  if (values['dump-range']) {
    const [start, length] = values['dump-range'].split(':').map((v) => Number(v));
    dumpStart = start;
    dumpLength = length;
  }

  const bootrom = new Uint32Array(new Uint8Array(fs.readFileSync(path.join(CACHE, 'bootrom-b1.bin'))).buffer);
  // The flash contents outlive every chip instance: a reset or power cut keeps them.
  const flashImage = new Uint8Array(FLASH_SIZE).fill(0xff);
  if (values.flash) flashImage.set(new Uint8Array(fs.readFileSync(values.flash)).subarray(0, FLASH_SIZE));
  if (values.image) loadUf2(values.image, flashImage);
  if (values.fs) {
    const fsImage = new Uint8Array(fs.readFileSync(values.fs));
    if (fsImage.length > LAYOUT.fsLength) fail(`--fs image is larger than the filesystem (${LAYOUT.fsLength} bytes)`);
    flashImage.set(fsImage, LAYOUT.fsStart);
  }

  const python = values.python ?? path.join(ROOT, '.venv', 'bin', 'python');
  const sim = values.sim.length
    ? new SimProcess({ python, script: path.join(HERE, 'simbridge.py'), sims: values.sim, events: values.event, freq })
    : null;

  const consoleSink = new Console(!values.quiet);
  consoleSink.timestamps = values.timestamps;
  consoleSink.now = () => (nowNs() / 1e9).toFixed(6);
  const input = [];
  const report = {
    exit: null,
    reason: '',
    emulated_s: 0,
    wall_s: 0,
    boots: [],
    reboots: 0,
    cuts: [],
    captures: {},
    capture_s: {}, // emulated time each captured wait matched (at most one 1 ms batch late)
    steps_done: 0,
    flash_ops: 0,
    i2c_transactions: 0,
    i2c_nacks: 0,
    truth: null,
  };
  const log = (message) => process.stderr.write(`[picow] ${message}\n`);
  const wallStart = Date.now();
  let timeBaseNs = 0; // emulated time of the chips before this one
  let board = null;

  function nowNs() {
    return timeBaseNs + (board ? board.clock.nanos : 0);
  }

  function boot(cause) {
    if (board) {
      timeBaseNs += board.clock.nanos;
      flashImage.set(board.rp2040.flash.subarray(0, FLASH_SIZE));
      report.flash_ops += board.flash.operations;
      report.i2c_transactions += board.i2c ? board.i2c.transactions : 0;
      report.i2c_nacks += board.i2c ? board.i2c.nacks : 0;
    }
    const clock = new emu.SimulationClock();
    const rp2040 = new emu.RP2040(clock);
    rp2040.logger = new emu.ConsoleLogger(emu.LogLevel.Error);
    rp2040.loadBootrom(bootrom);
    rp2040.flash.set(flashImage); // after loadBootrom, which erases the array
    const flash = new NorFlash(rp2040.flash);
    attachFlash(rp2040, flash);
    const current = { rp2040, clock, flash, reset: null, cut: null, i2c: null };
    const cut = cuts[report.cuts.length];
    if (cut) {
      flash.cut = cut;
      flash.onPowerCut = (info) => {
        current.cut = info;
      };
    }
    const watchdog = rp2040.peripherals[0x40058];
    watchdog.onWatchdogTrigger = () => {
      current.reset = 'watchdog';
      // This chip is finished; its periodic alarm would otherwise fire again at the same instant
      // for ever (counter at 0) and never let the runner see the reset.
      watchdog.alarm.enable = false;
      watchdog.timer.enable = false;
    };
    const usb = attachUsb(emu, rp2040, consoleSink, input, values['stock-cdc']);
    current.usb = usb;
    if (sim) {
      current.i2c = new I2CBridge({
        rp2040,
        sim,
        bus,
        scl,
        sda,
        drdyPin,
        freq,
        nowUs: () => Math.floor(nowNs() / 1000),
        I2CMode: emu.I2CMode,
      });
    }
    // Straight into boot2 at the start of flash, as rp2040js's own MicroPython demo does.
    rp2040.core.PC = 0x10000000;
    consoleSink.boot = '';
    board = current; // before the start time is read: nowNs() counts the new chip's clock from here
    report.boots.push({ cause, start_s: nowNs() / 1e9, flash_ops: 0, console: '' });
    log(`boot ${report.boots.length} (${cause}) at ${(nowNs() / 1e9).toFixed(3)} s emulated`);
  }

  function finishBoot() {
    const entry = report.boots[report.boots.length - 1];
    entry.flash_ops = board.flash.operations;
    entry.console = consoleSink.boot;
  }

  function dump(file) {
    fs.writeFileSync(file, flashImage.subarray(dumpStart, dumpStart + dumpLength));
  }

  // --- the console script -------------------------------------------------------------------
  let stepIndex = 0;
  let runUntilNs = null;
  function advanceSteps() {
    while (stepIndex < steps.length) {
      const step = steps[stepIndex];
      if (step.send !== undefined) {
        for (const ch of Buffer.from(step.send, 'latin1')) input.push(ch);
        board.usb.kick();
      } else if (step.wait !== undefined) {
        const at = consoleSink.text.indexOf(step.wait);
        if (at < 0) return;
        const end = at + step.wait.length;
        if (step.capture) {
          report.captures[step.capture] = consoleSink.text.slice(0, end);
          report.capture_s[step.capture] = nowNs() / 1e9;
        }
        consoleSink.text = consoleSink.text.slice(end);
      } else if (step.boot !== undefined) {
        if (report.boots.length < step.boot) return;
      } else if (step.run_s !== undefined) {
        if (runUntilNs === null) runUntilNs = nowNs() + step.run_s * 1e9;
        if (nowNs() < runUntilNs) return;
        runUntilNs = null;
      } else {
        throw new Error(`unknown step ${JSON.stringify(step)}`);
      }
      stepIndex++;
      report.steps_done = stepIndex;
    }
  }

  boot('power-on');
  const cycleNs = 8; // 125 MHz
  let exitCode = 0;
  let lastProgress = Date.now();
  try {
    for (;;) {
      const { rp2040, clock } = board;
      const core = rp2040.core;
      // Batches end after 1 ms of emulated time at most, so a step, a deadline or a key press is
      // never late by more (an idle core jumps from alarm to alarm, far per iteration).
      const batchEnd = clock.nanos + 1_000_000;
      for (let i = 0; i < 200_000 && clock.nanos < batchEnd; i++) {
        if (core.waiting) {
          const idle = clock.nanosToNextAlarm;
          clock.tick(idle > 0 ? idle : 1_000_000);
        } else {
          clock.tick(core.executeInstruction() * cycleNs);
        }
        if (board.reset || board.cut) break;
      }
      if (board.cut) {
        const info = board.cut;
        flashImage.set(board.rp2040.flash.subarray(0, FLASH_SIZE));
        const entry = { ...info, boot: report.boots.length, t_s: nowNs() / 1e9, dump: null };
        if (values['cut-dump']) {
          fs.mkdirSync(values['cut-dump'], { recursive: true });
          entry.dump = path.join(values['cut-dump'], `cut-${report.cuts.length + 1}.bin`);
          dump(entry.dump);
        }
        report.cuts.push(entry);
        log(`power cut ${report.cuts.length} at flash ${info.kind} #${info.at} ` +
          `(0x${info.start.toString(16)}+${info.length}, ${(info.fraction * 100).toFixed(0)}% done) ` +
          `at ${entry.t_s.toFixed(3)} s`);
        finishBoot();
        // The script starts again for the board that comes up after the cut.
        stepIndex = 0;
        runUntilNs = null;
        consoleSink.text = '';
        input.length = 0;
        boot('power-cut');
        continue;
      }
      if (board.reset) {
        report.reboots++;
        finishBoot();
        boot(board.reset);
        continue;
      }
      if (values.progress && Date.now() - lastProgress > 2000) {
        lastProgress = Date.now();
        log(`progress: ${(nowNs() / 1e9).toFixed(3)} s emulated, PC 0x${(board.rp2040.core.PC >>> 0).toString(16)}` +
          `, waiting ${board.rp2040.core.waiting}, next alarm in ${board.clock.nanosToNextAlarm} ns`);
      }
      advanceSteps();
      if (stepIndex >= steps.length && report.cuts.length >= cuts.length && steps.length) {
        report.exit = 0;
        report.reason = 'done';
        break;
      }
      if (nowNs() >= timeoutUs * 1000) {
        exitCode = 3;
        report.reason = `emulated deadline (${values['timeout-s']} s) reached at step ${stepIndex + 1} of ${steps.length}`;
        break;
      }
      if (Date.now() - wallStart > wallTimeoutMs) {
        exitCode = 4;
        report.reason = `wall-clock deadline (${values['wall-timeout-s']} s) reached at step ${stepIndex + 1}`;
        break;
      }
    }
  } catch (error) {
    exitCode = 1;
    report.reason = `error: ${error.stack ?? error}`;
  }
  finishBoot();
  flashImage.set(board.rp2040.flash.subarray(0, FLASH_SIZE));
  report.flash_ops += board.flash.operations;
  if (board.i2c) {
    report.i2c_transactions += board.i2c.transactions;
    report.i2c_nacks += board.i2c.nacks;
  }
  report.exit = exitCode;
  report.emulated_s = nowNs() / 1e9;
  report.wall_s = (Date.now() - wallStart) / 1000;
  if (sim && exitCode !== 1) {
    try {
      report.truth = sim.call({ op: 'truth', t: Math.floor(nowNs() / 1000) }).truth;
    } catch (error) {
      report.reason += `; truth: ${error}`;
    }
  }
  if (sim) sim.close();
  if (values['save-flash']) dump(values['save-flash']);
  if (values['save-journal']) {
    fs.writeFileSync(values['save-journal'],
      flashImage.subarray(LAYOUT.journalStart, LAYOUT.journalStart + LAYOUT.journalLength));
  }
  report.console = consoleSink.all.join('');
  if (values.report) fs.writeFileSync(values.report, JSON.stringify(report, null, 1));
  log(`${report.reason || 'stopped'}: ${report.emulated_s.toFixed(3)} s emulated in ${report.wall_s.toFixed(1)} s wall, ` +
    `${report.boots.length} boot(s), ${report.reboots} reset(s), ${report.cuts.length} cut(s), ${report.flash_ops} flash op(s)`);
  process.exit(exitCode);
}

main().catch((error) => {
  process.stderr.write(`[picow] ${error.stack ?? error}\n`);
  process.exit(1);
});
