// The emulated chip's side of the I2C bus: the RP2040's I2C controller hooks and the bit-banged
// zero-length probes of I2C.scan(), both answered by the simulated modules in a Python child
// process (tools/picow/simbridge.py), and the modules' DRDY output on its GPIO.
//
// Calls into the child are synchronous (two FIFOs, blocking reads): an I2C hook gets its answer
// before the next instruction runs, and no JavaScript event loop turn is needed.

import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const R_TX_EMPTY = 1 << 4;
const FUNCTION_SIO = 5;
const DRDY_PULSE_NS = 10_000; // the module holds DRDY low for ~10 us

export class SimProcess {
  constructor({ python, script, sims, events, freq }) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'picow-bridge-'));
    this.requestsPath = path.join(this.dir, 'requests');
    this.repliesPath = path.join(this.dir, 'replies');
    execFileSync('mkfifo', [this.requestsPath, this.repliesPath]);
    const args = [script, this.requestsPath, this.repliesPath, '--freq', String(freq)];
    for (const sim of sims) args.push('--sim', sim);
    for (const event of events) args.push('--event', event);
    // its stdout would mix with the console: both of its streams go to our stderr
    this.child = spawn(python, args, { stdio: ['ignore', 2, 2] });
    // O_RDWR on a FIFO never blocks in open(); reads then block until the child answers.
    this.requests = fs.openSync(this.requestsPath, fs.constants.O_RDWR);
    this.replies = fs.openSync(this.repliesPath, fs.constants.O_RDWR);
    this.pending = '';
    this.buffer = Buffer.alloc(1 << 16);
    this.calls = 0;
  }

  call(request) {
    this.calls++;
    fs.writeSync(this.requests, JSON.stringify(request) + '\n');
    for (;;) {
      const newline = this.pending.indexOf('\n');
      if (newline >= 0) {
        const line = this.pending.slice(0, newline);
        this.pending = this.pending.slice(newline + 1);
        const reply = JSON.parse(line);
        if (reply.fatal) {
          throw new Error('simulated modules failed:\n' + reply.fatal);
        }
        return reply;
      }
      const n = fs.readSync(this.replies, this.buffer, 0, this.buffer.length, null);
      this.pending += this.buffer.toString('ascii', 0, n);
    }
  }

  close() {
    try {
      this.child.kill();
    } catch {
      // already gone
    }
    fs.closeSync(this.requests);
    fs.closeSync(this.replies);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Wires one chip instance to the simulated modules. `nowUs()` is the run's emulated time (it
 * continues across chip resets, as the modules keep running).
 */
export class I2CBridge {
  constructor({ rp2040, sim, bus, scl, sda, drdyPin, freq, nowUs, I2CMode }) {
    this.rp2040 = rp2040;
    this.sim = sim;
    this.i2c = rp2040.i2c[bus];
    this.nowUs = nowUs;
    this.read = I2CMode.Read;
    this.bitNs = Math.round(1e9 / freq);
    this.byteNs = 9 * this.bitNs;
    this.target = null;
    this.writeBuf = [];
    this.readData = null;
    this.readPos = 0;
    this.drdyPin = drdyPin == null ? null : rp2040.gpio[drdyPin];
    this.drdyAlarm = rp2040.clock.createAlarm(() => this.tick());
    this.transactions = 0;
    this.nacks = 0;
    this.hookController();
    this.probe = new BitBangProbe(rp2040.gpio[scl], rp2040.gpio[sda], (addr, read) => this.connect(addr, read));
    if (this.drdyPin) {
      this.drdyPin.setInputValue(true); // pulled up by the module's open-drain output stage
    }
    this.tick();
  }

  after(ns, fn) {
    this.rp2040.clock.createAlarm(fn).schedule(ns);
  }

  hookController() {
    const i2c = this.i2c;
    // Each phase completes after the time it takes on the wire, so bus time is emulated time.
    i2c.onStart = () => this.after(this.bitNs, () => i2c.completeStart());
    i2c.onConnect = (addr, mode) => {
      this.flushWrite();
      const reply = this.connect(addr, mode === this.read);
      this.after(this.byteNs, () => {
        if (reply.ack) {
          i2c.completeConnect(true);
        } else {
          this.nacks++;
          i2c.completeConnect(false);
          // Silicon: the abort flushes the TX FIFO, which raises TX_EMPTY, which pico-sdk waits
          // for before it looks at the abort source. rp2040js raises TX_EMPTY only when it pulls
          // a command, so without this a NACK surfaces as a timeout (ETIMEDOUT, not EIO).
          i2c.setInterrupts(R_TX_EMPTY);
        }
      });
    };
    i2c.onWriteByte = (value) => {
      this.writeBuf.push(value);
      this.after(this.byteNs, () => i2c.completeWrite(true));
    };
    i2c.onReadByte = () => {
      const data = this.readData;
      const value = data && this.readPos < data.length ? data[this.readPos++] : 0xff;
      this.after(this.byteNs, () => i2c.completeRead(value));
    };
    i2c.onStop = () => {
      this.flushWrite();
      this.after(this.bitNs, () => i2c.completeStop());
    };
  }

  connect(addr, read) {
    this.transactions++;
    const reply = this.sim.call({ op: 'connect', t: this.nowUs(), addr, read: read ? 1 : 0 });
    this.target = reply.ack ? addr : null;
    this.writeBuf = [];
    this.readData = reply.data ? Buffer.from(reply.data, 'hex') : null;
    this.readPos = 0;
    this.applyDrdy(reply.drdy);
    return reply;
  }

  flushWrite() {
    if (this.target !== null && this.writeBuf.length) {
      const data = Buffer.from(this.writeBuf).toString('hex');
      const reply = this.sim.call({ op: 'write', t: this.nowUs(), addr: this.target, data });
      this.applyDrdy(reply.drdy);
    }
    this.writeBuf = [];
  }

  tick() {
    const reply = this.sim.call({ op: 'tick', t: this.nowUs() });
    this.applyDrdy(reply.drdy);
  }

  applyDrdy(drdy) {
    const pin = this.drdyPin;
    if (pin) {
      for (let i = 0; i < drdy.pulses.length; i++) {
        pin.setInputValue(false);
        this.after(DRDY_PULSE_NS, () => pin.setInputValue(this.drdyLevel !== 0));
      }
      this.drdyLevel = drdy.level;
      if (!drdy.pulses.length) {
        pin.setInputValue(drdy.level !== 0);
      }
    }
    if (drdy.next >= 0) {
      // never at the same instant again: that could spin in one place of emulated time
      const inNs = Math.max(1000, (drdy.next - this.nowUs()) * 1000);
      this.drdyAlarm.schedule(inNs);
    } else {
      this.drdyAlarm.cancel();
    }
  }
}

/**
 * The open-drain I2C lines at the level of the pins, for MicroPython's I2C.scan() on rp2: it sends
 * its zero-length writes by bit-banging SCL and SDA (the hardware controller cannot), so the
 * modules must ACK their address on the pins. Lines are pulled up; either side pulls them low.
 */
class BitBangProbe {
  constructor(sclPin, sdaPin, connect) {
    this.scl = sclPin;
    this.sda = sdaPin;
    this.connect = connect;
    this.sdaHeld = false; // the addressed module pulls SDA low for its ACK
    this.lastScl = true;
    this.lastSda = true;
    this.state = 'idle';
    this.bits = 0;
    this.byte = 0;
    this.scl.setInputValue(true);
    this.sda.setInputValue(true);
    this.scl.addListener(() => this.update());
    this.sda.addListener(() => this.update());
  }

  static drivesLow(pin) {
    return pin.functionSelect === FUNCTION_SIO && pin.outputEnable && !pin.outputValue;
  }

  update() {
    const scl = !BitBangProbe.drivesLow(this.scl);
    const sda = !BitBangProbe.drivesLow(this.sda) && !this.sdaHeld;
    const { lastScl, lastSda } = this;
    this.lastScl = scl;
    this.lastSda = sda;
    this.scl.setInputValue(scl);
    this.sda.setInputValue(sda);
    if (scl && lastScl && sda !== lastSda) {
      if (!sda) {
        this.state = 'address'; // START (or repeated START)
        this.bits = 0;
        this.byte = 0;
      } else {
        this.state = 'idle'; // STOP
        this.release();
      }
      return;
    }
    if (scl && !lastScl && this.state === 'address' && this.bits < 8) {
      this.byte = (this.byte << 1) | (sda ? 1 : 0);
      this.bits++;
    } else if (!scl && lastScl) {
      if (this.state === 'address' && this.bits === 8) {
        const reply = this.connect(this.byte >> 1, this.byte & 1);
        this.state = reply.ack ? 'ack' : 'ignore';
        if (reply.ack) {
          this.sdaHeld = true;
          this.update();
        }
      } else if (this.state === 'ack') {
        this.state = 'ignore'; // data bytes of a bit-banged transfer are not modelled
        this.release();
      }
    }
  }

  release() {
    if (this.sdaHeld) {
      this.sdaHeld = false;
      this.update();
    }
  }
}
