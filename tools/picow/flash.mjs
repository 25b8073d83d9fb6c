// NOR flash behind the RP2040's SSI, so that the bootrom's erase and program land in the flash
// array the emulated chip executes from (stock rp2040js answers the SSI with a stub and leaves
// IO_QSPI unimplemented, so every flash write is silently dropped).
//
// The bootrom and pico-sdk talk to the flash in plain SPI mode: chip select is forced through the
// IO_QSPI SS pin's output override, command, address and data bytes go through the SSI data
// register, and every byte sent returns one byte in the receive FIFO. boot2 (and the XIP set-up)
// lets the SSI drive chip select itself; those transfers are framed by the receive FIFO running dry.
//
// Erases and programs take effect when chip select rises, as on a real part. Each one is counted,
// and a power cut can be armed at the Nth: the operation is applied partially (a sector with only
// some bytes erased, a page with only its first bytes programmed) and the world stops.

const CMD_WRITE_STATUS = 0x01;
const CMD_PAGE_PROGRAM = 0x02;
const CMD_READ = 0x03;
const CMD_WRITE_DISABLE = 0x04;
const CMD_READ_STATUS = 0x05;
const CMD_WRITE_ENABLE = 0x06;
const CMD_FAST_READ = 0x0b;
const CMD_SECTOR_ERASE = 0x20; // 4 KiB
const CMD_READ_STATUS2 = 0x35;
const CMD_UNIQUE_ID = 0x4b;
const CMD_BLOCK_ERASE_32K = 0x52;
const CMD_CHIP_ERASE = 0x60;
const CMD_JEDEC_ID = 0x9f;
const CMD_CHIP_ERASE_2 = 0xc7;
const CMD_BLOCK_ERASE_64K = 0xd8;

const ERASE_SIZES = {
  [CMD_SECTOR_ERASE]: 4096,
  [CMD_BLOCK_ERASE_32K]: 32768,
  [CMD_BLOCK_ERASE_64K]: 65536,
};

export const FLASH_SIZE = 2 * 1024 * 1024; // the Pico W's W25Q16JV
const JEDEC_ID = [0xef, 0x40, 0x15];
const UNIQUE_ID = [0xe6, 0x61, 0x38, 0x52, 0x83, 0x2a, 0x4b, 0x2c];

/** A small deterministic PRNG (xorshift32) so a partial erase is the same on every replay. */
function prng(seed) {
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

export class PowerCut extends Error {}

export class NorFlash {
  /**
   * @param {Uint8Array} memory the array the core reads XIP code and data from (offset 0 = 0x10000000)
   */
  constructor(memory) {
    this.memory = memory;
    this.selected = false;
    this.writeEnabled = false;
    this.bytes = []; // the current transaction, command byte first
    this.operations = 0; // erases and programs completed since power-on
    this.erases = 0;
    this.programs = 0;
    this.cut = null; // {at: N, fraction: f} arms a power cut at the Nth operation
    this.cutInfo = null; // what was cut, once it happened
    this.onPowerCut = null;
    this.log = [];
    this.keepLog = false;
  }

  select() {
    this.selected = true;
    this.bytes.length = 0;
  }

  deselect() {
    if (!this.selected) {
      return;
    }
    this.selected = false;
    this.finish();
    this.bytes.length = 0;
  }

  /** One byte out on MOSI, the byte the flash drives on MISO back. */
  transfer(value) {
    const bytes = this.bytes;
    bytes.push(value & 0xff);
    const cmd = bytes[0];
    const n = bytes.length;
    switch (cmd) {
      case CMD_READ_STATUS:
        return this.writeEnabled ? 0x02 : 0x00; // never busy: operations complete at CS rise
      case CMD_READ_STATUS2:
        return 0x02; // QE set, so boot2 leaves the status registers alone
      case CMD_JEDEC_ID:
        return n >= 2 && n <= 4 ? JEDEC_ID[n - 2] : 0;
      case CMD_UNIQUE_ID:
        return n >= 6 && n < 14 ? UNIQUE_ID[n - 6] : 0;
      case CMD_READ:
        return n > 4 ? this.memory[(this.address() + n - 5) % FLASH_SIZE] : 0;
      case CMD_FAST_READ:
        return n > 5 ? this.memory[(this.address() + n - 6) % FLASH_SIZE] : 0;
      default:
        return 0;
    }
  }

  address() {
    const b = this.bytes;
    return ((b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
  }

  finish() {
    const bytes = this.bytes;
    if (!bytes.length) {
      return;
    }
    const cmd = bytes[0];
    if (cmd === CMD_WRITE_ENABLE) {
      this.writeEnabled = true;
      return;
    }
    if (cmd === CMD_WRITE_DISABLE) {
      this.writeEnabled = false;
      return;
    }
    if (cmd === CMD_WRITE_STATUS) {
      this.writeEnabled = false;
      return;
    }
    const eraseSize = ERASE_SIZES[cmd];
    if (eraseSize !== undefined && bytes.length >= 4) {
      if (this.writeEnabled) {
        const start = (this.address() % FLASH_SIZE) & ~(eraseSize - 1);
        this.operate('erase', start, eraseSize, null);
      }
      this.writeEnabled = false;
      return;
    }
    if (cmd === CMD_CHIP_ERASE || cmd === CMD_CHIP_ERASE_2) {
      if (this.writeEnabled) {
        this.operate('erase', 0, FLASH_SIZE, null);
      }
      this.writeEnabled = false;
      return;
    }
    if (cmd === CMD_PAGE_PROGRAM && bytes.length >= 4) {
      if (this.writeEnabled && bytes.length > 4) {
        this.operate('program', this.address() % FLASH_SIZE, bytes.length - 4, bytes.slice(4));
      }
      this.writeEnabled = false;
    }
  }

  operate(kind, start, length, data) {
    const index = this.operations + 1;
    const cut = this.cut && this.cut.at === index ? this.cut : null;
    const fraction = cut ? cut.fraction : 1;
    if (this.keepLog) {
      this.log.push({ kind, start, length });
    }
    if (kind === 'erase') {
      this.erase(start, length, fraction, index);
      this.erases++;
    } else {
      this.program(start, data, fraction, index);
      this.programs++;
    }
    this.operations = index;
    if (cut) {
      this.cutInfo = { at: index, kind, start, length, fraction };
      this.onPowerCut?.(this.cutInfo);
    }
  }

  erase(start, length, fraction, seed) {
    const memory = this.memory;
    if (fraction >= 1) {
      memory.fill(0xff, start, start + length);
      return;
    }
    // Cells erase unevenly: a cut sector holds a scatter of erased bytes among the old ones, and a
    // byte at the edge may have only some of its bits back at 1.
    const random = prng(seed);
    for (let i = start; i < start + length; i++) {
      const r = random();
      if (r < fraction) {
        memory[i] = 0xff;
      } else if (r < fraction + 0.01) {
        memory[i] |= Math.floor(random() * 256);
      }
    }
  }

  program(start, data, fraction, seed) {
    // Page program wraps within its 256-byte page; NOR programming only clears bits.
    const memory = this.memory;
    const page = start & ~0xff;
    let count = data.length;
    let partial = -1;
    if (fraction < 1) {
      count = Math.floor(data.length * fraction);
      partial = count < data.length ? count : -1;
    }
    for (let i = 0; i < count; i++) {
      const address = page | ((start + i) & 0xff);
      memory[address] &= data[i];
    }
    if (partial >= 0) {
      // the byte being programmed when the power went: some of its zero bits made it
      const random = prng(seed);
      const address = page | ((start + partial) & 0xff);
      memory[address] &= data[partial] | Math.floor(random() * 256);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// SSI (the flash's SPI controller at 0x18000000): enough for the bootrom's and pico-sdk's
// flash_put_get loops and for boot2.

const SSI_CTRLR0 = 0x00;
const SSI_CTRLR1 = 0x04;
const SSI_SSIENR = 0x08;
const SSI_SER = 0x10;
const SSI_BAUDR = 0x14;
const SSI_TXFLR = 0x20;
const SSI_RXFLR = 0x24;
const SSI_SR = 0x28;
const SSI_IMR = 0x2c;
const SSI_IDR = 0x58;
const SSI_VERSION_ID = 0x5c;
const SSI_DR0 = 0x60;
const SSI_RX_SAMPLE_DLY = 0xf0;
const SSI_SPI_CTRLR0 = 0xf4;
const SSI_TXD_DRIVE_EDGE = 0xf8;

const SR_TFNF = 1 << 1;
const SR_TFE = 1 << 2;
const SR_RFNE = 1 << 3;
const FIFO_DEPTH = 16;

function atomic(current, type, value) {
  switch (type) {
    case 1:
      return current ^ value;
    case 2:
      return current | value;
    case 3:
      return current & ~value;
    default:
      return value;
  }
}

export class FlashSSI {
  constructor(flash, ioqspi) {
    this.flash = flash;
    this.ioqspi = ioqspi;
    this.regs = new Map();
    this.rx = [];
    this.enabled = 0;
    this.autoActive = false; // a transfer with chip select driven by the SSI itself
  }

  readUint32(offset) {
    switch (offset) {
      case SSI_SSIENR:
        return this.enabled;
      case SSI_TXFLR:
        return 0;
      case SSI_RXFLR:
        return this.rx.length;
      case SSI_SR:
        return SR_TFE | SR_TFNF | (this.rx.length ? SR_RFNE : 0);
      case SSI_IDR:
        return 0x51535049;
      case SSI_VERSION_ID:
        return 0x3430312a;
      case SSI_DR0:
        if (!this.rx.length) {
          return 0;
        }
        return this.rx.shift();
      default:
        return this.regs.get(offset) ?? 0;
    }
  }

  writeUint32(offset, value) {
    switch (offset) {
      case SSI_SSIENR:
        this.enabled = value & 1;
        if (!this.enabled) {
          // disabling the SSI flushes its FIFOs and ends any transfer it was framing
          this.rx.length = 0;
          this.endAuto();
        }
        return;
      case SSI_DR0: {
        if (!this.enabled) {
          return;
        }
        const flash = this.flash;
        if (!this.ioqspi.csForced) {
          // SSI-framed transfer: it starts with the first byte after the previous reply was read
          if (!this.autoActive || this.rx.length === 0) {
            this.endAuto();
            flash.select();
            this.autoActive = true;
          }
        }
        const reply = flash.selected ? flash.transfer(value) : 0;
        if (this.rx.length < FIFO_DEPTH) {
          this.rx.push(reply);
        }
        return;
      }
      default:
        this.regs.set(offset, value >>> 0);
    }
  }

  endAuto() {
    if (this.autoActive) {
      this.autoActive = false;
      this.flash.deselect();
    }
  }

  writeUint32Atomic(offset, value, type) {
    this.writeUint32(offset, type ? atomic(this.readUint32(offset), type, value) : value);
  }
}

// IO_QSPI (0x40018000): the six QSPI pins' STATUS/CTRL pairs. Only the SS pin's output override
// matters: 2 forces chip select low (selected), 3 high; 0 hands it back to the SSI.
const SS_CTRL = 0x0c;

export class IoQspi {
  constructor(flash) {
    this.flash = flash;
    this.ctrl = new Uint32Array(6);
    this.csForced = false;
    this.ssi = null;
  }

  readUint32(offset) {
    if (offset < 0x30) {
      return offset & 4 ? this.ctrl[offset >> 3] : 0;
    }
    return 0;
  }

  writeUint32(offset, value) {
    if (offset >= 0x30 || !(offset & 4)) {
      return;
    }
    this.ctrl[offset >> 3] = value >>> 0;
    if (offset === SS_CTRL) {
      const override = (value >>> 8) & 3;
      if (override === 2) {
        this.ssi?.endAuto();
        if (!this.csForced) {
          this.csForced = true;
          this.flash.select();
        }
      } else if (this.csForced) {
        this.csForced = false;
        this.flash.deselect();
      }
    }
  }

  writeUint32Atomic(offset, value, type) {
    this.writeUint32(offset, type ? atomic(this.readUint32(offset), type, value) : value);
  }
}

/** Puts the flash model behind the chip's SSI and IO_QSPI peripherals. */
export function attachFlash(rp2040, flash) {
  const ioqspi = new IoQspi(flash);
  const ssi = new FlashSSI(flash, ioqspi);
  ioqspi.ssi = ssi;
  rp2040.peripherals[0x18000] = ssi;
  rp2040.peripherals[0x40018] = ioqspi;
  return { ssi, ioqspi };
}
