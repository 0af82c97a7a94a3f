/**
 * The simulator's ledger: what each device sent and what was acked, append-only, one short text line per event:
 *
 *   S <device> <boot> <seq> <qos> <sentMs>   a reading went to the wire for the first time
 *   A <device> <boot> <seq>                  its PUBACK (QoS 1) or PUBCOMP (QoS 2) arrived
 *   D <device> <boot> <seq>                  an already acked reading was deliberately sent again (buggy firmware)
 *   X <device> <boot> <seq>                  the offline buffer was full: this reading was dropped, never sent
 *
 * Every line is written with a synchronous write(2) before the matching packet is handed to the socket, so a crash
 * of the simulator loses no line that matters; a torn last line is ignored when reading. Boot counters live beside
 * it in boots.json (written atomically), so a restarted simulator is a rebooted device.
 */
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

export interface LedgerWriter {
  sent(device: string, boot: number, seq: number, qos: number, at: number): void;
  acked(device: string, boot: number, seq: number): void;
  resent(device: string, boot: number, seq: number): void;
  dropped(device: string, boot: number, seq: number): void;
  /** Returns the device's next boot number and records it durably. */
  nextBoot(device: string): number;
  close(): void;
}

export function openLedger(dir: string): LedgerWriter {
  mkdirSync(dir, { recursive: true });
  const fd = openSync(join(dir, 'ledger.log'), 'a');
  const bootsFile = join(dir, 'boots.json');
  const boots: Record<string, number> = existsSync(bootsFile)
    ? (JSON.parse(readFileSync(bootsFile, 'utf8')) as Record<string, number>)
    : {};
  const line = (s: string) => writeSync(fd, `${s}\n`);
  let closed = false;
  return {
    sent: (d, b, s, q, at) => line(`S ${d} ${b} ${s} ${q} ${at}`),
    acked: (d, b, s) => line(`A ${d} ${b} ${s}`),
    resent: (d, b, s) => line(`D ${d} ${b} ${s}`),
    dropped: (d, b, s) => line(`X ${d} ${b} ${s}`),
    nextBoot(device) {
      const boot = (boots[device] ?? 0) + 1;
      boots[device] = boot;
      writeFileSync(`${bootsFile}.tmp`, JSON.stringify(boots));
      renameSync(`${bootsFile}.tmp`, bootsFile);
      return boot;
    },
    close() {
      if (closed) return;
      closed = true;
      closeSync(fd);
    },
  };
}

export interface LedgerReading {
  device: string;
  boot: number;
  seq: number;
  qos: 0 | 1 | 2;
  sentAt: number;
  acked: boolean;
}

export interface LedgerContents {
  readings: Map<string, LedgerReading>;
  resent: number;
  dropped: number;
}

export const readingId = (device: string, boot: number, seq: number): string => `${device}:${boot}:${seq}`;

export function readLedger(dir: string): LedgerContents {
  const text = readFileSync(join(dir, 'ledger.log'), 'utf8');
  const readings = new Map<string, LedgerReading>();
  let resent = 0;
  let dropped = 0;
  const lines = text.split('\n');
  for (const raw of lines) {
    const f = raw.split(' ');
    const [kind, device, boot, seq] = [f[0], f[1] ?? '', Number(f[2]), Number(f[3])];
    if (!Number.isInteger(boot) || !Number.isInteger(seq)) continue;
    const id = readingId(device, boot, seq);
    if (kind === 'S' && f.length === 6) {
      const qos = Number(f[4]);
      if (qos === 0 || qos === 1 || qos === 2)
        readings.set(id, { device, boot, seq, qos, sentAt: Number(f[5]), acked: false });
    } else if (kind === 'A' && f.length === 4) {
      const r = readings.get(id);
      if (r) r.acked = true;
    } else if (kind === 'D' && f.length === 4) resent++;
    else if (kind === 'X' && f.length === 4) dropped++;
  }
  return { readings, resent, dropped };
}
