/**
 * The page at / (docs/ui.md): the stations, their delivery counters per QoS and the gateway's state, refreshed every
 * few seconds, and each new reading as it is committed (Server-Sent Events over fetch, so that the API token can go
 * in a header). No framework: the page is small, and a Pi serves it.
 */
import type UPlot from 'uplot';
import type { Counters, StoredReading } from '../gateway/domain/model.js';
import type { SeriesBucket } from '../gateway/domain/series.js';
import type { DeviceView, DevicesView, HealthView, SeriesView, StatsView } from '../gateway/http/views.js';

declare global {
  interface Window {
    uPlot: typeof UPlot;
  }
}

type Forwarding =
  | { enabled: false }
  | { enabled: true; connected: boolean; backlog: { readings: number; etaSeconds: number | null } };

const REFRESH_MS = 5000;
const TOKEN_KEY = 'sensorgate.token';
const QOS_NAMES = ['qos0', 'qos1', 'qos2'] as const;
const GUARANTEE = ['at most once', 'at least once', 'exactly once'];
/** Measurements with a unit and a label; others show under their own name. */
const KNOWN: Record<string, [string, string, number]> = {
  temp_c: ['Temperature', '°C', 1],
  rh_pct: ['Humidity', '%', 0],
  pres_hpa: ['Pressure', 'hPa', 1],
  wind_ms: ['Wind', 'm/s', 1],
  wind_deg: ['Wind dir.', '°', 0],
  rain_mm: ['Rain', 'mm', 1],
  lux: ['Light', 'lx', 0],
  batt_v: ['Battery', 'V', 2],
};
const OVERVIEW_MEASUREMENTS = ['temp_c', 'rh_pct', 'pres_hpa', 'wind_ms'];
const RANGES: Record<string, number> = { '1h': 3_600_000, '24h': 86_400_000, '7d': 7 * 86_400_000 };
/** Buckets per chart: one per 1–2 px of a phone's width. */
const CHART_BUCKETS = 300;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const main = $<HTMLElement>('main');

class Unauthorized extends Error {}

function authHeaders(): HeadersInit {
  const token = localStorage.getItem(TOKEN_KEY);
  return token ? { authorization: `Bearer ${token}` } : {};
}

async function api<T>(path: string): Promise<T> {
  const res = await fetch(path, { headers: authHeaders() });
  if (res.status === 401) throw new Unauthorized();
  // /healthz answers 503 with its reason: a body to show, not a failure.
  if (!res.ok && res.status !== 503) throw new Error(`${path}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string | null)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) if (c !== null) node.append(c);
  return node;
}

function fmt(name: string, value: number | undefined): string {
  if (value === undefined) return '–';
  const known = KNOWN[name];
  return known ? `${value.toFixed(known[2])} ${known[1]}` : String(value);
}

function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86_400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86_400)} d ago`;
}

function bytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

function showToken(): void {
  const form = $<HTMLFormElement>('token-form');
  form.hidden = false;
  main.replaceChildren();
}

$<HTMLFormElement>('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  localStorage.setItem(TOKEN_KEY, $<HTMLInputElement>('token').value.trim());
  $<HTMLFormElement>('token-form').hidden = true;
  void render();
  startEvents();
});

// ---- state shared by the views --------------------------------------------------------------------------------

let devices = new Map<string, DeviceView>();
/** A view's hook for each reading that arrives live. */
let onReading: ((r: StoredReading) => void) | null = null;

async function loadDevices(): Promise<DeviceView[]> {
  const all: DeviceView[] = [];
  let after = '';
  for (;;) {
    const page = await api<DevicesView>(`/api/v1/devices?limit=1000&after=${encodeURIComponent(after)}`);
    all.push(...page.devices);
    if (page.next === null) break;
    after = page.next;
  }
  devices = new Map(all.map((d) => [d.id, d]));
  return all;
}

async function renderHealth(): Promise<void> {
  const health = await api<HealthView>('/healthz');
  const pill = $<HTMLSpanElement>('health');
  pill.textContent = health.status === 'ok' ? '● healthy' : `● ${health.reason}`;
  pill.className = `pill ${health.status === 'ok' ? 'ok' : 'bad'}`;
  pill.dataset.status = health.status;
}

// ---- overview -------------------------------------------------------------------------------------------------

/** One QoS's counters as a table row, after its label. */
function counterRow(label: string, c: Counters): HTMLTableRowElement {
  return el(
    'tr',
    {},
    el('td', {}, label),
    el('td', {}, String(c.received)),
    el('td', {}, String(c.stored)),
    el('td', {}, String(c.duplicate)),
    el('td', { class: c.missing > 0 ? 'warn' : '' }, String(c.missing)),
    el('td', { class: c.rejected > 0 ? 'warn' : '' }, String(c.rejected)),
  );
}

/** A station's QoS levels that saw anything. */
function counterRows(counters: DeviceView['counters']): HTMLTableSectionElement {
  return el(
    'tbody',
    {},
    ...QOS_NAMES.flatMap((q, i) => {
      const c = counters[q];
      return c.received === 0 && c.missing === 0 ? [] : [counterRow(`QoS ${i}`, c)];
    }),
  );
}

function counterTable(counters: DeviceView['counters']): HTMLElement {
  // Short headings: a card is a third of a screen wide, or a phone's width.
  const columns: [string, string][] = [
    ['recv', 'received'],
    ['stored', 'stored'],
    ['dup', 'duplicates dropped'],
    ['miss', 'missing (gaps in seq)'],
    ['rej', 'rejected'],
  ];
  const head = el(
    'thead',
    {},
    el(
      'tr',
      {},
      el('th', { scope: 'col' }, ''),
      ...columns.map(([short, long]) => el('th', { scope: 'col' }, el('abbr', { title: long }, short))),
    ),
  );
  return el('div', { class: 'scroll' }, el('table', {}, head, counterRows(counters)));
}

function stationCard(d: DeviceView, now: number): HTMLElement {
  const m = d.latest?.m ?? {};
  const silent = d.silent;
  const battery = m.batt_v;
  const card = el(
    'article',
    { class: `card${silent ? ' silent' : ''}`, 'data-station': d.id, 'data-silent': String(silent) },
    el(
      'header',
      {},
      el('a', { href: `#/station/${encodeURIComponent(d.id)}` }, d.id),
      el('span', { class: `pill ${silent ? 'bad' : 'ok'}` }, silent ? 'silent' : 'live'),
      el('span', { class: 'muted', 'data-age': String(d.lastSeen) }, ago(now - d.lastSeen)),
    ),
    el(
      'div',
      { class: 'values' },
      ...OVERVIEW_MEASUREMENTS.map((name) =>
        el(
          'div',
          {},
          el('span', {}, KNOWN[name]?.[0] ?? name),
          el('span', { 'data-measurement': name }, fmt(name, m[name])),
        ),
      ),
      el(
        'div',
        {},
        el('span', {}, 'Battery'),
        el('span', { class: d.lowBattery ? 'bad' : '' }, `${fmt('batt_v', battery)}${d.lowBattery ? ' low' : ''}`),
      ),
    ),
    counterTable(d.counters),
    d.bootResets > 0 ? el('p', { class: 'muted' }, `${d.bootResets} restart(s) of the device seen`) : null,
  );
  return card;
}

/** A reading that just arrived: the station is seen now, and its card shows it. */
function showReading(d: DeviceView, r: StoredReading): void {
  d.latest = r;
  d.lastSeen = Math.max(d.lastSeen, r.rx);
  d.silent = false;
  main.querySelector(`[data-station="${CSS.escape(d.id)}"]`)?.replaceWith(stationCard(d, Date.now()));
}

function statusPanel(forwarding: Forwarding, stats: StatsView): HTMLElement {
  const fwd = forwarding.enabled
    ? `${forwarding.connected ? 'connected' : 'disconnected'}; backlog ${forwarding.backlog.readings}${
        forwarding.backlog.etaSeconds !== null && forwarding.backlog.readings > 0
          ? `, about ${Math.ceil(forwarding.backlog.etaSeconds)} s to drain`
          : ''
      }`
    : 'off';
  const { storage } = stats;
  const horizon = storage.horizonTs === null ? 'nothing deleted' : new Date(storage.horizonTs).toLocaleString();
  return el(
    'section',
    { class: 'panel' },
    el('h2', {}, 'Gateway'),
    el(
      'div',
      { class: 'status' },
      el(
        'div',
        {},
        el('span', { class: 'muted' }, 'Forwarding: '),
        el('span', { class: forwarding.enabled && !forwarding.connected ? 'warn' : '' }, fwd),
      ),
      el('div', {}, el('span', { class: 'muted' }, 'Disk free: '), bytes(storage.freeBytes)),
      el('div', {}, el('span', { class: 'muted' }, 'Store: '), bytes(storage.bytes)),
      el('div', {}, el('span', { class: 'muted' }, 'Kept since: '), horizon),
    ),
  );
}

function semanticsPanel(stats: StatsView, list: DeviceView[]): HTMLElement {
  const lossy = list.filter((d) => d.counters.qos0.missing > 0).map((d) => d.id);
  const rows = QOS_NAMES.map((q, i) => counterRow(`QoS ${i}: ${GUARANTEE[i]}`, stats[q]));
  const head = el(
    'tr',
    {},
    ...['', 'received', 'stored', 'dup.', 'missing', 'rejected'].map((h) => el('th', { scope: 'col' }, h)),
  );
  return el(
    'section',
    { class: 'panel', id: 'semantics' },
    el('h2', {}, 'Delivery, by QoS'),
    el('div', { class: 'scroll' }, el('table', {}, el('thead', {}, head), el('tbody', {}, ...rows))),
    el(
      'p',
      { class: 'muted' },
      'QoS 0 readings can be lost on the way (counted as missing from the gaps in sequence numbers); QoS 1 and 2 are acked only once on disk, and duplicates are dropped by sequence number.',
    ),
    lossy.length > 0
      ? el('p', { class: 'warn' }, `Lost readings at QoS 0: ${lossy.join(', ')}. These stations should send at QoS 1.`)
      : null,
  );
}

async function renderOverview(): Promise<void> {
  const [list, stats, forwarding] = await Promise.all([
    loadDevices(),
    api<StatsView>('/api/v1/stats'),
    api<Forwarding>('/api/v1/forwarding'),
  ]);
  const now = Date.now();
  const silent = list.filter((d) => d.silent).length;
  main.replaceChildren(
    statusPanel(forwarding, stats),
    el(
      'h1',
      {},
      `Stations (${list.length})`,
      silent > 0 ? el('span', { class: 'pill bad', style: 'margin-left:.5rem' }, `${silent} silent`) : null,
    ),
    list.length === 0
      ? el('p', { class: 'muted' }, 'No station has sent a reading yet.')
      : el('div', { class: 'grid', id: 'stations' }, ...list.map((d) => stationCard(d, now))),
    semanticsPanel(stats, list),
  );
  onReading = (r) => {
    const d = devices.get(r.deviceId);
    if (!d) return void render();
    showReading(d, r);
  };
}

// ---- station page ---------------------------------------------------------------------------------------------

interface Chart {
  plot: UPlot;
  data: [number[], (number | null)[], (number | null)[], (number | null)[]];
}

function chartData(buckets: SeriesBucket[], name: string): Chart['data'] {
  const data: Chart['data'] = [[], [], [], []];
  for (const b of buckets) {
    const agg = b.m[name];
    if (!agg) continue;
    data[0].push(b.t / 1000);
    data[1].push(agg[0]);
    data[2].push(agg[1]);
    data[3].push(agg[2]);
  }
  return data;
}

function makeChart(target: HTMLElement, name: string, data: Chart['data']): UPlot {
  const unit = KNOWN[name]?.[1] ?? '';
  const opts: UPlot.Options = {
    width: Math.max(200, target.clientWidth),
    height: 200,
    series: [
      {},
      { label: 'min', stroke: '#7aa6cf', width: 1 },
      { label: `mean ${unit}`, stroke: '#0b4f8a', width: 2 },
      { label: 'max', stroke: '#c46b1a', width: 1 },
    ],
    bands: [{ series: [3, 1], fill: 'rgba(11, 79, 138, 0.12)' }],
    // Wide enough for a pressure with decimals (1013.75) on a phone.
    axes: [{}, { size: 72 }],
    legend: { live: false },
  };
  return new window.uPlot(opts, data, target);
}

async function renderStation(id: string, range: string): Promise<void> {
  const span = RANGES[range] ?? (RANGES['1h'] as number);
  const to = Date.now();
  const from = to - span;
  const step = Math.ceil(span / CHART_BUCKETS);
  await loadDevices();
  const d = devices.get(id);
  if (!d) {
    main.replaceChildren(el('p', {}, `No station ${id}. `, el('a', { href: '#/' }, 'All stations')));
    return;
  }
  const series = await api<SeriesView>(
    `/api/v1/devices/${encodeURIComponent(id)}/series?from=${from}&to=${to}&step=${step}`,
  );
  const names = [...new Set([...Object.keys(d.latest?.m ?? {}), ...series.buckets.flatMap((b) => Object.keys(b.m))])];
  const ranges = el(
    'nav',
    { class: 'ranges' },
    ...Object.keys(RANGES).map((r) =>
      el(
        'a',
        { class: 'range', href: `#/station/${encodeURIComponent(id)}/${r}`, 'aria-current': String(r === range) },
        r,
      ),
    ),
  );
  const charts = new Map<string, Chart>();
  const sections = names.map((name) =>
    el('section', { class: 'panel' }, el('h2', {}, KNOWN[name]?.[0] ?? name), el('div', { class: 'chart' })),
  );
  main.replaceChildren(
    el('p', {}, el('a', { href: '#/' }, '← All stations')),
    stationCard(d, Date.now()),
    ranges,
    ...sections,
  );
  names.forEach((name, i) => {
    const target = sections[i]?.querySelector<HTMLElement>('.chart');
    if (!target) return;
    const data = chartData(series.buckets, name);
    charts.set(name, { plot: makeChart(target, name, data), data });
  });
  onReading = (r) => {
    if (r.deviceId !== id) return;
    showReading(d, r);
    const t = (from + Math.floor((r.ts - from) / step) * step) / 1000;
    for (const [name, value] of Object.entries(r.m)) {
      const chart = charts.get(name);
      if (!chart) continue;
      const [ts, min, mean, max] = chart.data;
      const last = ts.length - 1;
      if (ts[last] === t) {
        // The running mean of a bucket is not kept; the newest value stands in for it until the next refresh.
        min[last] = Math.min(min[last] ?? value, value);
        max[last] = Math.max(max[last] ?? value, value);
        mean[last] = value;
      } else {
        ts.push(t);
        min.push(value);
        mean.push(value);
        max.push(value);
      }
      chart.plot.setData(chart.data);
    }
  };
}

// ---- routing, refresh, live events ----------------------------------------------------------------------------

function route(): { id: string | null; range: string } {
  const m = /^#\/station\/([^/]+)(?:\/(\w+))?$/.exec(location.hash);
  return m ? { id: decodeURIComponent(m[1] as string), range: m[2] ?? '1h' } : { id: null, range: '1h' };
}

let rendering: Promise<void> | null = null;

async function render(): Promise<void> {
  rendering ??= (async () => {
    try {
      const { id, range } = route();
      await renderHealth();
      if (id === null) await renderOverview();
      else await renderStation(id, range);
    } catch (err) {
      if (err instanceof Unauthorized) showToken();
      else main.prepend(el('p', { class: 'bad' }, `Could not load: ${(err as Error).message}`));
    } finally {
      rendering = null;
    }
  })();
  return rendering;
}

let events: AbortController | null = null;

function setLive(on: boolean): void {
  const pill = $<HTMLSpanElement>('live');
  pill.textContent = on ? '● live' : '○ live';
  pill.className = `pill ${on ? 'ok' : 'muted'}`;
  pill.dataset.live = String(on);
}

/** Reads the SSE stream with fetch (EventSource cannot send the token), and reconnects 2 s after it ends. */
function startEvents(): void {
  events?.abort();
  const controller = new AbortController();
  events = controller;
  void (async () => {
    try {
      const res = await fetch('/api/v1/events', { headers: authHeaders(), signal: controller.signal });
      if (!res.ok || !res.body) throw new Error(`events: HTTP ${res.status}`);
      setLive(true);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffered = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffered += value;
        let end = buffered.indexOf('\n\n');
        while (end >= 0) {
          const block = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          end = buffered.indexOf('\n\n');
          if (!block.startsWith('event: reading\n')) continue;
          const data = block.split('\n').find((line) => line.startsWith('data: '));
          if (data) onReading?.(JSON.parse(data.slice(6)) as StoredReading);
        }
      }
    } catch {
      // Reconnected below; the page keeps refreshing meanwhile.
    }
    setLive(false);
    if (!controller.signal.aborted) setTimeout(startEvents, 2000);
  })();
}

window.addEventListener('hashchange', () => void render());
setInterval(() => {
  if (route().id === null) void render();
  else void renderHealth().catch(() => undefined);
}, REFRESH_MS);
setInterval(() => {
  const now = Date.now();
  for (const span of main.querySelectorAll<HTMLElement>('[data-age]'))
    span.textContent = ago(now - Number(span.dataset.age));
}, 1000);
void render();
startEvents();
