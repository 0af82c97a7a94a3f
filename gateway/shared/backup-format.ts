/**
 * The backup stream (`GET /api/v1/backup`, read by `gateway backup`): one JSON line per database record,
 * `[key, value]`, both base64, so that any byte survives the trip.
 */

export function encodeBackupLine([key, value]: [string, Uint8Array]): string {
  return `${JSON.stringify([Buffer.from(key).toString('base64'), Buffer.from(value).toString('base64')])}\n`;
}

export function decodeBackupLine(line: string): [string, Buffer] {
  const [key, value] = JSON.parse(line) as [string, string];
  return [Buffer.from(key, 'base64').toString('utf8'), Buffer.from(value, 'base64')];
}
