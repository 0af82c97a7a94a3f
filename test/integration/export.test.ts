import { execFileSync, spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { GATEWAY_MAIN } from '../helpers/process.js';
import { connectDevice, payload, reading, telemetryTopic } from '../helpers/device.js';
import { startTestGateway } from '../helpers/gateway.js';

describe('export across devices', () => {
  it('streams every reading in the time range as NDJSON or long-format CSV, device by device', async () => {
    const gw = await startTestGateway();
    for (const id of ['ex-b', 'ex-a']) {
      const dev = await connectDevice(gw.mqttUrl, id);
      for (let seq = 0; seq < 5; seq++)
        await dev.publishAsync(telemetryTopic(id), payload(reading(1, seq)), { qos: 1 });
    }
    const from = reading(1, 1).ts;
    const to = reading(1, 3).ts;

    const nd = await fetch(`${gw.httpUrl}/api/v1/readings?from=${from}&to=${to}&format=ndjson`);
    expect(nd.headers.get('content-type')).toBe('application/x-ndjson');
    const rows = (await nd.text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { deviceId: string; seq: number });
    expect(rows.map((r) => `${r.deviceId}/${r.seq}`)).toEqual([
      'ex-a/1',
      'ex-a/2',
      'ex-a/3',
      'ex-b/1',
      'ex-b/2',
      'ex-b/3',
    ]);

    const csv = (await (await fetch(`${gw.httpUrl}/api/v1/readings?from=${from}&to=${from}&format=csv`)).text())
      .trim()
      .split('\n');
    const r = reading(1, 1);
    expect(csv[0]).toBe('device_id,ts,boot,seq,qos,rx,measurement,value');
    expect(csv.slice(1).map((l) => l.replace(/,\d+,(\w+),([\d.]+)$/, ',RX,$1,$2'))).toEqual([
      `ex-a,${r.ts},1,1,1,RX,temp_c,${r.m.temp_c}`,
      `ex-a,${r.ts},1,1,1,RX,rh_pct,${r.m.rh_pct}`,
      `ex-b,${r.ts},1,1,1,RX,temp_c,${r.m.temp_c}`,
      `ex-b,${r.ts},1,1,1,RX,rh_pct,${r.m.rh_pct}`,
    ]);
    // An independent reader: Python's csv module parses what we wrote, header and all.
    const parsed = execFileSync(
      '/usr/bin/python3',
      ['-c', 'import csv, json, sys; print(json.dumps(list(csv.DictReader(sys.stdin))))'],
      { input: `${csv.join('\n')}\n` },
    ).toString();
    const rowsByPython = JSON.parse(parsed) as Record<string, string>[];
    expect(rowsByPython).toHaveLength(4);
    expect(rowsByPython[0]).toMatchObject({
      device_id: 'ex-a',
      seq: '1',
      measurement: 'temp_c',
      value: String(r.m.temp_c),
    });
    expect((await fetch(`${gw.httpUrl}/api/v1/readings?format=xml`)).status).toBe(400);
  });
});

describe('gateway export', () => {
  it('writes the CSV of a time range from the running gateway to stdout', async () => {
    const gw = await startTestGateway();
    const dev = await connectDevice(gw.mqttUrl, 'cli');
    for (let seq = 0; seq < 3; seq++)
      await dev.publishAsync(telemetryTopic('cli'), payload(reading(1, seq)), { qos: 1 });
    const port = new URL(gw.httpUrl).port;
    const from = String(reading(1, 1).ts);
    const out = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      let stdout = '';
      const child = spawn(process.execPath, [GATEWAY_MAIN, 'export', '--http-port', port, '--from', from]);
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.on('exit', (code) => resolve({ code, stdout }));
    });
    expect(out.code).toBe(0);
    const lines = out.stdout.trim().split('\n');
    expect(lines[0]).toBe('device_id,ts,boot,seq,qos,rx,measurement,value');
    expect(lines.slice(1).map((l) => l.split(',')[3])).toEqual(['1', '1', '2', '2']);
  });
});
