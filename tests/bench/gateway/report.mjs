// report.mjs: turns a tests/bench/gateway/run.sh results directory into the Markdown tables of
// the README (added latency = the gateway's percentile minus the direct run's at the same rate).
//   node tests/bench/gateway/report.mjs tests/bench/out/gateway-<time>
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node report.mjs RESULTS_DIR');
  process.exit(2);
}
const runs = {};
for (const f of readdirSync(dir)) {
  const m = f.match(/^(direct|tiergate|portkey)-(plain|stream)-(\d+)\.json$/);
  if (!m) continue;
  try {
    runs[`${m[1]} ${m[2]} ${m[3]}`] = JSON.parse(readFileSync(join(dir, f), 'utf8'));
  } catch {
    runs[`${m[1]} ${m[2]} ${m[3]}`] = null; // the load generator died: counts as a failed run
  }
}
const cpu = {};
if (existsSync(join(dir, 'cpu.txt'))) {
  for (const line of readFileSync(join(dir, 'cpu.txt'), 'utf8').trim().split('\n')) {
    const [t, mode, rate, ticks] = line.split(' ');
    cpu[`${t} ${mode} ${rate}`] = Number(ticks);
  }
}
// Resident memory after each run (KiB): "target mode rate VmRSS VmHWM".
const rssAfter = {};
if (existsSync(join(dir, 'rss.txt'))) {
  for (const line of readFileSync(join(dir, 'rss.txt'), 'utf8').trim().split('\n')) {
    const [t, mode, rate, r, h] = line.split(' ');
    rssAfter[`${t} ${mode} ${rate}`] = { rss: Number(r), hwm: Number(h) };
  }
}
const get = (t, mode, rate) => runs[`${t} ${mode} ${rate}`];
const ms = (us) => (us == null ? '–' : (us / 1000).toFixed(3));
const has = (t) => Object.keys(runs).some((k) => k.startsWith(t + ' '));
const rates = [...new Set(Object.keys(runs).map((k) => Number(k.split(' ')[2])))].sort((a, b) => a - b);
const fixed = (process.env.RATES || '500 2000 5000').split(/\s+/).map(Number);

function added(t, mode, rate, p) {
  const a = get(t, mode, rate), d = get('direct', mode, rate);
  if (!a || !d || a.errors || d.errors) return null;
  return a.latency_us[p] - d.latency_us[p];
}

const lines = [];
const out = (s = '') => lines.push(s);
out('Added latency: the gateway\'s latency percentile minus the mock\'s own at the same offered rate');
out('(open loop, measured from the intended send time). Milliseconds.');
out();
const pk = has('portkey');
out(`| mode | rate/s | direct p50 / p99 | tiergate p50 / p99 | tiergate added p50 / p99 |` +
    (pk ? ' Portkey p50 / p99 | Portkey added p50 / p99 | p99 added, Portkey ÷ tiergate |' : '') +
    ' errors (tiergate' + (pk ? ' / Portkey' : '') + ') | tiergate CPU µs/req | tiergate RSS after, MB |');
out(`|---|---|---|---|---|` + (pk ? '---|---|---|' : '') + '---|---|---|');
for (const mode of ['plain', 'stream']) {
  for (const rate of fixed) {
    const d = get('direct', mode, rate), t = get('tiergate', mode, rate), p = get('portkey', mode, rate);
    if (!d && !t) continue;
    const pair = (r) => (r ? `${ms(r.latency_us.p50)} / ${ms(r.latency_us.p99)}` : 'failed');
    const tAdd = [added('tiergate', mode, rate, 'p50'), added('tiergate', mode, rate, 'p99')];
    let row = `| ${mode} | ${rate} | ${pair(d)} | ${pair(t)} | ${ms(tAdd[0])} / ${ms(tAdd[1])} |`;
    if (pk) {
      const pAdd = [added('portkey', mode, rate, 'p50'), added('portkey', mode, rate, 'p99')];
      const ratio = pAdd[1] != null && tAdd[1] != null && tAdd[1] > 0 ? (pAdd[1] / tAdd[1]).toFixed(1) + '×' : '–';
      row += ` ${p && !p.errors ? pair(p) : p ? `${pair(p)} (${p.errors} errors)` : 'failed'} | ${ms(pAdd[0])} / ${ms(pAdd[1])} | ${ratio} |`;
    }
    const c = cpu[`tiergate ${mode} ${rate}`];
    const cpuUs = t && c != null && t.sent ? ((c * 10000) / t.sent).toFixed(0) : '–';
    const ra = rssAfter[`tiergate ${mode} ${rate}`];
    row += ` ${t ? t.errors : '–'}${pk ? ' / ' + (p ? p.errors : '–') : ''} | ${cpuUs} | ${ra ? (ra.rss / 1024).toFixed(1) : '–'} |`;
    out(row);
  }
}
out();

// Highest rate held: no errors, offered rate achieved (97%), p99 under 100 ms.
const held = (t, mode) => {
  let best = null;
  for (const rate of rates) {
    const r = get(t, mode, rate);
    if (!r) continue;
    if (r.errors === 0 && r.achieved_rps >= 0.97 * r.rate && r.latency_us.p99 < 100000) best = Math.max(best ?? 0, rate);
  }
  return best;
};
out('Highest offered rate held (no errors, ≥ 97% of the rate achieved, p99 < 100 ms), of the rates tried:');
out();
out('| | plain | stream |');
out('|---|---|---|');
for (const t of ['direct', 'tiergate', 'portkey'].filter(has)) {
  out(`| ${t} | ${held(t, 'plain') ?? 'none'} | ${held(t, 'stream') ?? 'none'} |`);
}
out();

// Checks against the issue's targets.
const rss = existsSync(join(dir, 'tiergate.rss')) ? readFileSync(join(dir, 'tiergate.rss'), 'utf8') : '';
const hwm = Number((rss.match(/VmHWM:\s+(\d+)/) || [])[1] || 0);
const cur = Number((rss.match(/VmRSS:\s+(\d+)/) || [])[1] || 0);
const pkRss = existsSync(join(dir, 'portkey.rss')) ? readFileSync(join(dir, 'portkey.rss'), 'utf8') : '';
const pkHwm = Number((pkRss.match(/VmHWM:\s+(\d+)/) || [])[1] || 0);
// Requests sent through tiergate: every try (raw/), not only the best of the repeats.
let sent = 0;
const rawDir = join(dir, 'raw');
if (existsSync(rawDir)) {
  for (const f of readdirSync(rawDir)) {
    if (!/^tiergate-.*\.json$/.test(f)) continue;
    try {
      sent += JSON.parse(readFileSync(join(rawDir, f), 'utf8')).sent;
    } catch {
      /* a run that printed nothing sent nothing we can count */
    }
  }
} else {
  for (const [k, r] of Object.entries(runs)) if (k.startsWith('tiergate ') && r) sent += r.sent;
}
const rowsTxt = existsSync(join(dir, 'rows.txt')) ? readFileSync(join(dir, 'rows.txt'), 'utf8').trim() : '';
const [rows, rows200, distinct] = rowsTxt.split('|').map(Number);
const t2000 = added('tiergate', 'plain', 2000, 'p99');
const p2000 = added('portkey', 'plain', 2000, 'p99');
const verdict = (ok) => (ok ? 'met' : 'NOT met');
out(`Machine load average during the run: ${existsSync(join(dir, 'load.txt')) ? readFileSync(join(dir, 'load.txt'), 'utf8').trim() : '?'} (${existsSync(join(dir, 'nproc.txt')) ? readFileSync(join(dir, 'nproc.txt'), 'utf8').trim() : '?'} CPUs).`);
out();
out('| target | measured | |');
out('|---|---|---|');
out(`| tiergate added p99 < 0.5 ms at 2000 req/s (plain) | ${ms(t2000)} ms | ${t2000 != null && t2000 < 0 ? 'noise: below the direct run' : verdict(t2000 != null && t2000 < 500)} |`);
if (pk) {
  const ratio = p2000 != null && t2000 != null && t2000 > 0 ? p2000 / t2000 : null; // needs both error-free
  const pr = get('portkey', 'plain', 2000), tr = get('tiergate', 'plain', 2000);
  if (ratio == null && pr && tr && pr.errors > 0 && tr.errors === 0) {
    // Portkey cannot carry the load at all: no ratio of latencies, but no contest either.
    out(`| Portkey's added p99 ≥ 5× tiergate's at 2000 req/s | Portkey does not hold 2000 req/s (${pr.errors} of ${pr.requests} failed, p50 ${ms(pr.latency_us.p50)} ms); tiergate 0 errors | met |`);
  } else {
    out(`| Portkey's added p99 ≥ 5× tiergate's at 2000 req/s | ${ratio == null ? '–' : ratio.toFixed(1) + '×'} | ${verdict(ratio != null && ratio >= 5)} |`);
  }
}
const fixedRss = fixed.flatMap((r) => ['plain', 'stream'].map((m) => rssAfter[`tiergate ${m} ${r}`]?.rss || 0));
const fixedMax = Math.max(0, ...fixedRss);
out(`| tiergate RSS < 30 MB at the fixed rates (largest RSS after a fixed-rate run) | ${(fixedMax / 1024).toFixed(1)} MB | ${verdict(fixedMax > 0 && fixedMax < 30 * 1024)} |`);
out(`| tiergate RSS peak over the whole run, ramp to overload included | ${(hwm / 1024).toFixed(1)} MB peak, ${(cur / 1024).toFixed(1)} MB at the end${pkHwm ? `; Portkey ${(pkHwm / 1024).toFixed(1)} MB peak` : ''} | ${hwm > 0 && hwm < 30 * 1024 ? 'under 30 MB' : 'over 30 MB'} |`);
out(`| every request through tiergate has one log row | ${rows} rows (${distinct} distinct ids, ${rows200} with status 200) for ${sent} requests sent | ${verdict(rows === sent && distinct === rows)} |`);
if (existsSync(join(dir, 'overhead.txt'))) {
  const [pl, st] = readFileSync(join(dir, 'overhead.txt'), 'utf8').split('\n');
  const fmt = (l) => (l && l.includes('|') ? l.split('|').map((v) => Number(v).toFixed(3)).join(' / ') : '–');
  out();
  out(`tiergate's own time per request (its log's \`overhead_ms\`: total minus the upstream call, all runs), p50 / p99 / p999 ms: plain ${fmt(pl)}; streamed ${fmt(st)}.`);
}
console.log(lines.join('\n'));
