// report.mjs: turns a tests/bench/local/run.sh results directory into its Markdown report:
// the engines' own decode speed, the streams table per model and server, the arrival scenario,
// memory, and issue 9's targets for tiergate, each met / NOT met (or not measured).
//   node tests/bench/local/report.mjs tests/bench/out/local-<time>
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node report.mjs RESULTS_DIR');
  process.exit(2);
}
const raw = join(dir, 'raw');
// One JSON value from a file, or null when it is missing or broken (a run that died).
function load(name) {
  const p = join(raw, name);
  if (!existsSync(p)) return null;
  try {
    return JSON.parse(readFileSync(p, 'utf8'));
  } catch {
    return null;
  }
}

const meta = load('meta.json') || {};
const TG = `tg${meta.max_tokens || 64}`, DEPTH = meta.prompt_tokens || 64, TGD = `${TG}@d${DEPTH}`;
const servers = meta.servers || ['llama-server', 'tiergate'];
const streams = meta.streams || [1, 4, 8, 16];
const names = (process.env.MODELS || 'smollm2-135m:q8_0 smollm2-135m:q4_k_m qwen2.5-0.5b:q8_0 qwen2.5-0.5b:q4_k_m')
  .split(/\s+/).filter(Boolean).map((m) => m.replace(':', '-'))
  .filter((n) => existsSync(join(raw, `model-${n}.json`)));

const f1 = (x) => (x == null || Number.isNaN(x) ? '–' : x.toFixed(1));
const f2 = (x) => (x == null || Number.isNaN(x) ? '–' : x.toFixed(2));
const mib = (kib) => (kib == null || kib < 0 ? '–' : (kib / 1024).toFixed(1));
const lines = [];
const out = (s = '') => lines.push(s);

// An engine's own figure for TEST: the mean of the runs right before and right after that
// server's loads on the file (either alone when only one is there).
function benchTs(name, which, test) {
  const figs = ['', '-after'].map((sfx) => {
    if (which === 'tiergate') {
      const a = load(`slmbench-${name}${sfx}.json`);
      const r = Array.isArray(a) && a.find((x) => x.test === test);
      return r ? r.avg_ts : null;
    }
    const a = load(`llamabench-${name}${sfx}.json`);
    const n = Number(test.slice(2));
    const r = Array.isArray(a) &&
      a.find((x) => (test.startsWith('tg') ? x.n_gen === n && x.n_prompt === 0 : x.n_prompt === n && x.n_gen === 0));
    return r ? r.avg_ts : null;
  }).filter((v) => v != null);
  return figs.length ? figs.reduce((s, v) => s + v, 0) / figs.length : null;
}
const loadRun = (srv, name, n) => load(`load-${srv}-${name}-${n}.json`);
const arrival = (srv, name) => load(`arrival-${srv}-${name}.json`);
const served = (srv, name) => !existsSync(join(raw, `unavailable-${srv}-${name}.json`));

out('# Local serving: tiergate next to llama-server');
out();
out(`${meta.date || '?'} · ${meta.cpu || '?'}, ${meta.nproc || '?'} CPUs · load average ${meta.load_start || '?'} ` +
    `at the start, ${meta.load_end || '?'} at the end · tiergate ${meta.tiergate_commit || '?'}, ` +
    `llama.cpp ${meta.llama_cpp_commit || '?'}${meta.llama_args ? ` (extra llama-server args: \`${meta.llama_args}\`)` : ''}` +
    `${meta.nice ? ` · every benchmark process at nice ${meta.nice}` : ''}`);
out();
out(`Both servers: ${meta.threads} threads, ${meta.slots} slots (llama-server \`-np ${meta.slots}\`), ` +
    `${meta.ctx} tokens per slot (llama-server \`-c ${meta.slots * meta.ctx}\`), continuous batching, ` +
    `one after the other on the same files. Each load: a warm-up round, then ${meta.rounds} rounds of N ` +
    `streamed chat completions written together (closed loop, one fixed batch per round), ` +
    `${meta.max_tokens} tokens each (ignore_eos, temperature 0), every prompt unique (no prefix-cache hits). ` +
    'Aggregate tok/s: completion tokens of a round / (last stream end − first request written), median ' +
    'over rounds. TTFT: request written → first chunk with content, percentiles over all measured ' +
    'streams (p99 of a few dozen samples is close to their maximum). Decode/stream: (tokens − 1) / ' +
    '(end − first content), the figure a tg test measures. ITL: gaps between content chunks. ' +
    'llama-server runs at its defaults otherwise (in recent builds: one unified KV pool shared by the ' +
    'slots, and a host-memory prompt cache of up to 8 GiB, `--cache-ram`, which its RSS includes). ' +
    '"others CPU %": the largest share of all CPUs that processes other than the server and the ' +
    'load generator took during a measured round (a shared machine; a load above NOISE_PCT was ' +
    'run again, up to RETRIES times, keeping the least disturbed attempt).');
out();

out('## The engines alone (no server; tok/s)');
out();
out(`| model | tiergate \`slm bench\` ${TG} | ${TG} at depth ${DEPTH} (${TGD}) | pp64 | llama-bench ${TG} | pp64 |`);
out('|---|---|---|---|---|---|');
for (const name of names)
  out(`| ${name} | ${f1(benchTs(name, 'tiergate', TG))} | ${f1(benchTs(name, 'tiergate', TGD))} | ` +
      `${f1(benchTs(name, 'tiergate', 'pp64'))} | ${f1(benchTs(name, 'llama', TG))} | ${f1(benchTs(name, 'llama', 'pp64'))} |`);
out();
out('Each figure is the mean of two runs, right before and right after that server\'s loads on the file ' +
    '(the machine\'s speed drifts over a run).');
out(`${TGD}: the same decode after ${DEPTH} tokens already in the cache (\`slm bench -d\`, llama-bench's ` +
    '`--n-depth`), the context depth a served stream decodes at after its prompt: attention over ' +
    'those tokens makes each step slower, so this is the like-for-like figure for one stream ' +
    'through HTTP.');
out();

out('## Concurrent streams');
out();
out('| model | server | streams | aggregate tok/s | × 1 stream | TTFT p50 ms | TTFT p99 ms | decode/stream p50 tok/s | ITL p50 / p99 ms | prompt tokens | RSS max MiB | others CPU % | errors |');
out('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const name of names) {
  for (const srv of servers) {
    if (!served(srv, name)) {
      const u = load(`unavailable-${srv}-${name}.json`);
      out(`| ${name} | ${srv} | – | not served: ${(u && u.reason ? u.reason : 'see the log').replace(/\|/g, '\\|')} ` +
          `(raw/${srv}-${name}.log) | | | | | | | | | |`);
      continue;
    }
    const one = loadRun(srv, name, 1);
    for (const n of streams) {
      const r = loadRun(srv, name, n);
      if (!r) {
        out(`| ${name} | ${srv} | ${n} | no result | | | | | | | | | |`);
        continue;
      }
      out(`| ${name} | ${srv} | ${n} | ${f1(r.agg_tps)} | ${one ? f2(r.agg_tps / one.agg_tps) : '–'} | ` +
          `${f1(r.ttft_ms.p50)} | ${f1(r.ttft_ms.p99)} | ${f1(r.decode_tps_stream.p50)} | ` +
          `${f1(r.itl_ms.p50)} / ${f1(r.itl_ms.p99)} | ${r.prompt_tokens.n ? r.prompt_tokens.p50 : '–'} | ` +
          `${mib(r.rss_max_kib)} | ${f1(r.others_cpu_pct_max)} | ${r.errors}` +
          `${r.completion_tokens.n && r.completion_tokens.min < r.max_tokens ? ` (short streams: ${r.completion_tokens.min} tokens)` : ''} |`);
    }
  }
}
out();

out(`## A 64-token prompt arriving while ${meta.slots - 1} streams decode`);
out();
out('Per round: the probe alone, then another probe (new nonce) written once each background stream ' +
    'has 3 content chunks; medians over rounds. The longest gap is between two content chunks of any ' +
    'background stream while the probe was in flight (a prefill that stalls the running streams shows there).');
out();
out('| model | server | prompt tokens | TTFT alone ms | TTFT with others decoding ms | ratio | longest background gap ms (median of rounds) | others CPU % | errors |');
out('|---|---|---|---|---|---|---|---|---|');
for (const name of names)
  for (const srv of servers) {
    if (!served(srv, name)) continue;
    const a = arrival(srv, name);
    if (!a) {
      out(`| ${name} | ${srv} | no result | | | | | | |`);
      continue;
    }
    const pt = a.prompt_tokens.min === a.prompt_tokens.max ? `${a.prompt_tokens.min}` : `${a.prompt_tokens.min}–${a.prompt_tokens.max}`;
    out(`| ${name} | ${srv} | ${pt} | ${f1(a.alone_ttft_ms)} | ${f1(a.loaded_ttft_ms)} | ${f2(a.ratio)} | ` +
        `${f1(a.bg_gap_max_ms.p50)} | ${f1(a.others_cpu_pct_max)} | ${a.errors}${a.bg_ended_before_probe_done ? ` (${a.bg_ended_before_probe_done} background streams ended early)` : ''} |`);
  }
out();

out('## Memory');
out();
out(`Budget: model file + KV cache (f16 K and V, ${meta.slots} × ${meta.ctx} tokens) + 64 MiB. VmHWM: the server's peak resident set over all its loads.`);
out();
out('| model | server | VmHWM MiB | model file MiB | KV MiB | budget MiB | within |');
out('|---|---|---|---|---|---|---|');
const budget = {};
for (const name of names) {
  const m = load(`model-${name}.json`);
  budget[name] = m ? m.file_bytes / 1048576 + m.kv_bytes / 1048576 + 64 : null;
  for (const srv of servers) {
    if (!served(srv, name)) continue;
    const r = load(`rss-${srv}-${name}.json`);
    const hwm = r ? r.hwm_kib / 1024 : null;
    out(`| ${name} | ${srv} | ${f1(hwm)} | ${m ? f1(m.file_bytes / 1048576) : '–'} | ` +
        `${m ? f1(m.kv_bytes / 1048576) : '–'} | ${f1(budget[name])} | ` +
        `${hwm != null && budget[name] != null ? (hwm <= budget[name] ? 'yes' : 'no') : '–'} |`);
  }
}
out();

out('## Targets (issue 9, for tiergate)');
out();
out('| model | target | measured | met |');
out('|---|---|---|---|');
const verdict = (ok) => (ok == null ? 'not measured' : ok ? 'met' : '**NOT met**');
for (const name of names) {
  const tg = 'tiergate', ls = 'llama-server';
  const t1 = served(tg, name) ? loadRun(tg, name, 1) : null;
  const t8 = served(tg, name) ? loadRun(tg, name, 8) : null;
  const l8 = served(ls, name) ? loadRun(ls, name, 8) : null;
  const l1 = served(ls, name) ? loadRun(ls, name, 1) : null;
  const rows = [];
  const r81 = t1 && t8 ? t8.agg_tps / t1.agg_tps : null;
  rows.push(['aggregate tok/s at 8 streams ≥ 3 × 1 stream',
    r81 != null ? `${f2(r81)}× (${f1(t8.agg_tps)} vs ${f1(t1.agg_tps)}; llama-server ${l1 && l8 ? f2(l8.agg_tps / l1.agg_tps) + '×' : '–'})` : '–',
    r81 != null ? r81 >= 3 : null]);
  const rl = t8 && l8 ? t8.agg_tps / l8.agg_tps : null;
  rows.push(['aggregate tok/s at 8 streams ≥ 1.5 × llama-server\'s',
    rl != null ? `${f2(rl)}× (${f1(t8.agg_tps)} vs ${f1(l8.agg_tps)})` : '–', rl != null ? rl >= 1.5 : null]);
  const tgts = benchTs(name, 'tiergate', TGD), tg0 = benchTs(name, 'tiergate', TG);
  const rh = t1 && tgts ? t1.decode_tps_stream.p50 / tgts : null;
  rows.push([`one stream through HTTP ≥ 90 % of \`slm bench\` ${TGD} (decode/stream p50, same depth)`,
    rh != null ? `${(rh * 100).toFixed(0)} % (${f1(t1.decode_tps_stream.p50)} vs ${f1(tgts)}; ` +
      `${tg0 ? (100 * t1.decode_tps_stream.p50 / tg0).toFixed(0) + ' % of ' + TG + ' at depth 0, ' : ''}` +
      `aggregate incl. TTFT ${f1(t1.agg_tps)})` : '–',
    rh != null ? rh >= 0.9 : null]);
  const a = served(tg, name) ? arrival(tg, name) : null;
  const la = served(ls, name) ? arrival(ls, name) : null;
  rows.push([`TTFT of a 64-token prompt while ${meta.slots - 1} decode ≤ 2 × alone`,
    a ? `${f2(a.ratio)}× (${f1(a.loaded_ttft_ms)} vs ${f1(a.alone_ttft_ms)} ms; llama-server ${la ? f2(la.ratio) + '×' : '–'})` : '–',
    a ? a.ratio <= 2 : null]);
  const rss = served(tg, name) ? load(`rss-${tg}-${name}.json`) : null;
  const hwm = rss ? rss.hwm_kib / 1024 : null;
  rows.push(['RSS ≤ model + KV + 64 MiB',
    hwm != null && budget[name] != null ? `${f1(hwm)} MiB of ${f1(budget[name])} MiB` : '–',
    hwm != null && budget[name] != null ? hwm <= budget[name] : null]);
  for (const [t, m, ok] of rows) out(`| ${name} | ${t} | ${m} | ${verdict(ok)} |`);
}
out();
console.log(lines.join('\n'));
