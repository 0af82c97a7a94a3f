/**
 * verify: compares the ledger (what the devices sent and saw acked) with what the gateway stored, read through its
 * HTTP API, and reports per QoS the semantics that were measured next to those promised.
 */
import { readLedger, readingId, type LedgerReading } from './ledger.js';

export interface QosRow {
  qos: 0 | 1 | 2;
  promised: string;
  sent: number;
  /** QoS 0 has no acks: null. */
  acked: number | null;
  stored: number;
  lost: number;
  lostAfterAck: number | null;
  duplicatesStored: number;
  demonstrated: string;
  ok: boolean;
}

export interface Violation {
  kind: 'lost-after-ack' | 'stored-twice';
  deviceId: string;
  boot: number;
  seq: number;
  qos: 0 | 1 | 2;
}

export interface VerifyReport {
  rows: QosRow[];
  violations: Violation[];
  /** Deliberate re-sends of acked QoS 1/2 readings by the devices (the dup fault) that the gateway acked again. */
  resent: number;
  /** Duplicates the gateway counted and did not store (re-sends, retransmissions). */
  gatewayDuplicates: number;
  /** Readings a device never sent: QoS 0 while offline, or pushed out of a full QoS 1/2 buffer. */
  droppedByDevices: number;
  /** Stored readings the ledger does not know (another run or another fleet on the same ids). */
  unknownStored: number;
  ok: boolean;
}

const PROMISED = ['at most once', 'at least once', 'exactly once'] as const;

interface ApiReading {
  boot: number;
  seq: number;
}

async function fetchJson<T>(url: string): Promise<T> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

async function storedReadings(gateway: string, deviceId: string): Promise<ApiReading[]> {
  const out: ApiReading[] = [];
  let cursor: string | null = null;
  do {
    const q: string = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
    const page: { readings: ApiReading[]; next: string | null } = await fetchJson(
      `${gateway}/api/v1/devices/${encodeURIComponent(deviceId)}/readings?limit=10000${q}`,
    );
    out.push(...page.readings);
    cursor = page.next;
  } while (cursor !== null);
  return out;
}

export async function verify(ledgerDir: string, gateway: string): Promise<VerifyReport> {
  const ledger = readLedger(ledgerDir);
  const byDevice = new Map<string, LedgerReading[]>();
  for (const r of ledger.readings.values()) {
    const list = byDevice.get(r.device) ?? [];
    list.push(r);
    byDevice.set(r.device, list);
  }

  const storedCount = new Map<string, number>();
  let unknownStored = 0;
  for (const device of byDevice.keys()) {
    for (const s of await storedReadings(gateway, device)) {
      const id = readingId(device, s.boot, s.seq);
      storedCount.set(id, (storedCount.get(id) ?? 0) + 1);
      if (!ledger.readings.has(id)) unknownStored++;
    }
  }
  type DevicePage = { devices: { id: string; counters: Record<string, { duplicate: number }> }[]; next: string | null };
  const devices: DevicePage['devices'] = [];
  for (let after: string | null = ''; after !== null; ) {
    const page: DevicePage = await fetchJson<DevicePage>(
      `${gateway}/api/v1/devices?limit=10000&after=${encodeURIComponent(after)}`,
    );
    devices.push(...page.devices);
    after = page.next;
  }
  const gatewayDuplicates = devices
    .filter((d) => byDevice.has(d.id))
    .reduce((n, d) => n + Object.values(d.counters).reduce((m, c) => m + c.duplicate, 0), 0);

  const violations: Violation[] = [];
  const rows: QosRow[] = ([0, 1, 2] as const).map((qos) => {
    let sent = 0;
    let acked = 0;
    let stored = 0;
    let lostAfterAck = 0;
    let duplicatesStored = 0;
    for (const r of ledger.readings.values()) {
      if (r.qos !== qos) continue;
      sent++;
      const n = storedCount.get(readingId(r.device, r.boot, r.seq)) ?? 0;
      if (r.acked) acked++;
      if (n > 0) stored++;
      if (n > 1) {
        duplicatesStored += n - 1;
        violations.push({ kind: 'stored-twice', deviceId: r.device, boot: r.boot, seq: r.seq, qos });
      }
      if (r.acked && n === 0 && qos > 0) {
        lostAfterAck++;
        violations.push({ kind: 'lost-after-ack', deviceId: r.device, boot: r.boot, seq: r.seq, qos });
      }
    }
    const ok = duplicatesStored === 0 && lostAfterAck === 0;
    const demonstrated = !ok
      ? `VIOLATED: ${[lostAfterAck ? `${lostAfterAck} acked lost` : '', duplicatesStored ? `${duplicatesStored} stored twice` : ''].filter(Boolean).join(', ')}`
      : qos === 0
        ? 'at most once'
        : qos === 1
          ? 'at least once (exactly once in the store)'
          : 'exactly once';
    return {
      qos,
      promised: PROMISED[qos],
      sent,
      acked: qos === 0 ? null : acked,
      stored,
      lost: sent - stored,
      lostAfterAck: qos === 0 ? null : lostAfterAck,
      duplicatesStored,
      demonstrated,
      ok,
    };
  });
  return {
    rows,
    violations,
    resent: ledger.resent,
    gatewayDuplicates,
    droppedByDevices: ledger.dropped,
    unknownStored,
    ok: violations.length === 0,
  };
}

export function formatReport(report: VerifyReport): string {
  const header = [
    'QoS',
    'promised',
    'sent',
    'acked',
    'stored',
    'lost',
    'lost after ack',
    'duplicates stored',
    'measured',
  ];
  const cells = report.rows.map((r) => [
    String(r.qos),
    r.promised,
    String(r.sent),
    r.acked === null ? '-' : String(r.acked),
    String(r.stored),
    String(r.lost),
    r.lostAfterAck === null ? '-' : String(r.lostAfterAck),
    String(r.duplicatesStored),
    r.ok ? `${r.demonstrated} ✓` : r.demonstrated,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
  const line = (c: string[]) =>
    c
      .map((s, i) => (i >= 2 && i <= 7 ? s.padStart(widths[i] as number) : s.padEnd(widths[i] as number)))
      .join('  ')
      .trimEnd();
  const out = [line(header), ...cells.map(line)];
  out.push('');
  out.push(
    `duplicate re-sends by devices: ${report.resent}; duplicates the gateway dropped: ${report.gatewayDuplicates}; stored twice: ${report.rows.reduce((n, r) => n + r.duplicatesStored, 0)}`,
  );
  out.push(`readings the devices never sent (QoS 0 while offline, full QoS 1/2 buffer): ${report.droppedByDevices}`);
  if (report.unknownStored > 0) out.push(`stored readings not in this ledger: ${report.unknownStored}`);
  if (report.violations.length > 0) {
    out.push('');
    out.push(`VIOLATIONS (${report.violations.length}):`);
    for (const v of report.violations.slice(0, 20))
      out.push(`  ${v.kind}: device ${v.deviceId} boot ${v.boot} seq ${v.seq} (QoS ${v.qos})`);
    if (report.violations.length > 20) out.push(`  … and ${report.violations.length - 20} more`);
  }
  return out.join('\n');
}
