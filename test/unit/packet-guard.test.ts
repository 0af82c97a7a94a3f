import fc from 'fast-check';
import mqttPacket from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { FrameMeter } from '../../gateway/broker/packet-guard.js';

const publish = fc.record({
  topic: fc.constantFrom('a', 'sensors/ws-1/telemetry'),
  size: fc.oneof(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 120, max: 20_000 })),
  qos: fc.constantFrom(0, 1) as fc.Arbitrary<0 | 1>,
});

/** The remaining length a generated packet declares (the variable-length integer after its first byte). */
function remainingLength(packet: Buffer): number {
  let n = 0;
  for (let i = 1, scale = 1; ; i++, scale *= 128) {
    const byte = packet[i]!;
    n += (byte & 0x7f) * scale;
    if (byte < 0x80) return n;
  }
}

describe('packet size guard', () => {
  it('follows every packet across any chunking, and stops only at a declared length over the limit', () => {
    fc.assert(
      fc.property(
        fc.array(publish, { minLength: 1, maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (pubs, cuts) => {
          const packets = pubs.map((p) =>
            mqttPacket.generate({
              cmd: 'publish',
              topic: p.topic,
              payload: Buffer.alloc(p.size, 1),
              qos: p.qos,
              messageId: 1,
              dup: false,
              retain: false,
            }),
          );
          const stream = Buffer.concat([...packets, mqttPacket.generate({ cmd: 'pingreq' })]);
          const points = [...new Set(cuts.map((c) => c % stream.length))].sort((a, b) => a - b);
          const chunks = [0, ...points].map((start, i) => stream.subarray(start, [...points, stream.length][i]));
          const largest = Math.max(...packets.map(remainingLength));
          const fits = new FrameMeter(largest);
          expect(chunks.map((c) => fits.over(c))).toEqual(chunks.map(() => null));
          const tight = new FrameMeter(largest - 1);
          expect(chunks.map((c) => tight.over(c)).some((r) => r !== null)).toBe(true);
        },
      ),
    );
  });
});
