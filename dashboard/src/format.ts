/** Numbers for people: percentages, durations, dates (the browser's locale). */
const pct = new Intl.NumberFormat(undefined, { style: 'percent', maximumFractionDigits: 1 });
const num = new Intl.NumberFormat(undefined, { maximumFractionDigits: 3 });

export const percent = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? '–' : pct.format(x));
export const number = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? '–' : num.format(x));

export function duration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s - m * 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function when(iso: string | undefined): string {
  if (!iso) return '–';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

/** A headline metric: accuracy and F1 as percentages, errors as plain numbers. */
export const metric = (m: { metric: string; value: number } | undefined): string =>
  !m ? '–' : m.metric === 'mae' ? `MAE ${number(m.value)}` : `${m.metric === 'microF1' ? 'micro-F1' : m.metric} ${percent(m.value)}`;

const units = ['bytes', 'kB', 'MB', 'GB'];
/** A size for people: 1.2 MB rather than 1234567 bytes. */
export function bytes(n: number): string {
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : num.format(Number(v.toPrecision(3)))} ${units[i]}`;
}
