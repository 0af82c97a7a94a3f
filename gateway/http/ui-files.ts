/**
 * The page's files (docs/ui.md), read once at start-up and kept in memory with their gzip form: the page must work on
 * a Pi with no internet, so uPlot is served from the installed package, never from a CDN.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

export interface UiFile {
  type: string;
  body: Buffer;
  gzip: Buffer;
  etag: string;
}

/** URL path → file. */
export type UiFiles = ReadonlyMap<string, UiFile>;

/** The project root: this module is dist/gateway/http/ui-files.js, or gateway/http/ui-files.ts under vitest. */
const ROOT = fileURLToPath(
  new URL(
    existsSync(fileURLToPath(new URL('../../package.json', import.meta.url))) ? '../../' : '../../../',
    import.meta.url,
  ),
);
const require = createRequire(import.meta.url);

const SOURCES: readonly [string, string, () => string][] = [
  ['/', 'text/html; charset=utf-8', () => `${ROOT}ui/index.html`],
  ['/ui/app.css', 'text/css; charset=utf-8', () => `${ROOT}ui/app.css`],
  ['/ui/app.js', 'text/javascript; charset=utf-8', () => `${ROOT}dist/ui/app.js`],
  ['/ui/uPlot.min.css', 'text/css; charset=utf-8', () => require.resolve('uplot/dist/uPlot.min.css')],
  ['/ui/uPlot.iife.min.js', 'text/javascript; charset=utf-8', () => require.resolve('uplot/dist/uPlot.iife.min.js')],
];

/** Throws when a file is missing (the page was not built: `npm run build` makes dist/ui/app.js). */
export async function loadUiFiles(): Promise<UiFiles> {
  const files = new Map<string, UiFile>();
  for (const [path, type, locate] of SOURCES) {
    const body = await readFile(locate());
    files.set(path, {
      type,
      body,
      gzip: gzipSync(body, { level: 9 }),
      etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 16)}"`,
    });
  }
  return files;
}
