// harness.mjs: start the C mock upstream and `tiergate serve` for the end-to-end tests, on
// ephemeral ports, with a temp config and SQLite file (the same standard config as the C
// integration tests: tests/mock/harness.c th_gw_test_yaml).
//
// Environment: TIERGATE_BIN (required: the tiergate binary; tests/run.sh sets it),
// MOCK_UPSTREAM_BIN (default: tests/mock/mock_upstream next to TIERGATE_BIN in the build dir).

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import net from 'node:net';
import assert from 'node:assert/strict';

export const TEST_KEY = 'sk-tiergate-e2e-key';

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function tiergateBin() {
  const bin = process.env.TIERGATE_BIN;
  if (!bin) throw new Error('TIERGATE_BIN is not set (tests/run.sh sets it to the built tiergate)');
  return bin;
}

function mockBin() {
  if (process.env.MOCK_UPSTREAM_BIN) return process.env.MOCK_UPSTREAM_BIN;
  const guess = join(dirname(tiergateBin()), 'tests', 'mock', 'mock_upstream');
  if (!existsSync(guess)) throw new Error(`mock_upstream not found at ${guess}; set MOCK_UPSTREAM_BIN`);
  return guess;
}

/** A TCP port nothing listens on (bound, then released). */
export function closedPort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function waitExit(proc, ms) {
  if (proc.exitCode !== null || proc.signalCode !== null) {
    return Promise.resolve({ code: proc.exitCode, signal: proc.signalCode });
  }
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      proc.kill('SIGKILL');
      resolve({ code: null, signal: 'timeout' });
    }, ms);
    proc.once('exit', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal });
    });
  });
}

export async function startMock() {
  const proc = spawn(mockBin(), [], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error('mock_upstream did not print its port')), 10000);
    proc.stdout.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(t);
        resolve(Number(buf.slice(0, nl)));
      }
    });
    proc.once('exit', () => reject(new Error('mock_upstream exited')));
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    proc,
    port,
    url,
    async last(tag) {
      const r = await fetch(`${url}/_mock/last${tag ? `?tag=${encodeURIComponent(tag)}` : ''}`);
      return r.status === 200 ? r.json() : null;
    },
    async stats() {
      return (await fetch(`${url}/_mock/stats`)).json();
    },
    async stop() {
      proc.kill('SIGTERM');
      return waitExit(proc, 10000);
    },
  };
}

export function testYaml({ dbPath, mockPort, deadPort, limits, extraModels = '' }) {
  return `listen: 127.0.0.1:0
database: ${dbPath}
providers:
  mock:
    kind: openai
    base_url: http://127.0.0.1:${mockPort}/v1
    api_key_env: TIERGATE_TEST_KEY
  dead:
    kind: openai
    base_url: http://127.0.0.1:${deadPort}/v1
    api_key_env: TIERGATE_TEST_KEY
  nokey:
    kind: openai
    base_url: http://127.0.0.1:${mockPort}/v1
    api_key_env: TIERGATE_TEST_UNSET_KEY
  mock-anthropic:
    kind: anthropic
    base_url: http://127.0.0.1:${mockPort}
    api_key_env: TIERGATE_TEST_KEY
models:
  gpt-4o-mini:
    provider: mock
  gpt-4o:
    provider: mock
  mapped:
    provider: mock
    model: gpt-4.1-nano
  dead-model:
    provider: dead
    model: gpt-4o-mini
  nokey-model:
    provider: nokey
    model: gpt-4o-mini
${extraModels}default_model: gpt-4o-mini
baseline_model: gpt-4o
limits:
${limits ?? '  max_body_bytes: 64KiB\n  connect_timeout: 2s\n  first_byte_timeout: 1s\n  idle_timeout: 1s\n  total_timeout: 10s\n  client_timeout: 2s\n'}retry:
  max_attempts: 1
breaker:
  failures: 0
  error_rate: 0%
`;
}

/**
 * Starts tiergate in front of MOCK. Returns {url, baseURL, dbPath, dir, stop, rows}.
 * By default on testYaml(OPTS); with OPTS.configPath on that file instead (a shipped example),
 * with TIERGATE_DB set to the temp SQLite file and OPTS.env's variables set (a value of
 * undefined removes the variable from the gateway's environment).
 */
export async function startGateway(mock, opts = {}) {
  const dir = mkdtempSync(join(process.env.TMPDIR || tmpdir(), 'tiergate-e2e-'));
  const dbPath = join(dir, 'tiergate.db');
  let configPath = opts.configPath;
  const portFile = join(dir, 'port');
  if (!configPath) {
    configPath = join(dir, 'tiergate.yaml');
    writeFileSync(
      configPath,
      testYaml({ dbPath, mockPort: mock.port, deadPort: await closedPort(), ...opts }),
    );
  }
  const env = { ...process.env, TIERGATE_TEST_KEY: TEST_KEY };
  delete env.TIERGATE_TEST_UNSET_KEY;
  if (opts.configPath) {
    env.TIERGATE_DB = dbPath;
    for (const [k, v] of Object.entries(opts.env ?? {})) {
      if (v === undefined) delete env[k];
      else env[k] = String(v);
    }
  }
  const proc = spawn(tiergateBin(), ['serve', '--config', configPath, '--port-file', portFile], {
    env,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  let port = 0;
  const deadline = Date.now() + 20000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`tiergate exited during startup (${proc.exitCode})`);
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error('tiergate did not come up');
    }
    if (!port && existsSync(portFile)) port = Number(readFileSync(portFile, 'utf8')) || 0;
    if (port) {
      try {
        const r = await fetch(`http://127.0.0.1:${port}/healthz`);
        if (r.status === 200) break;
      } catch {
        /* not yet */
      }
    }
    await sleep(20);
  }
  const url = `http://127.0.0.1:${port}`;
  return {
    proc,
    port,
    url,
    baseURL: `${url}/v1`,
    dbPath,
    dir,
    /** Log rows matching a WHERE clause, through the sqlite3 CLI (Node 20 has no sqlite). */
    rows(where = '1') {
      const out = execFileSync('sqlite3', ['-json', dbPath, `SELECT * FROM requests WHERE ${where}`], {
        encoding: 'utf8',
      });
      return out.trim() ? JSON.parse(out) : [];
    },
    async stop() {
      proc.kill('SIGTERM');
      const res = await waitExit(proc, 15000);
      return res;
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Waits for a log row of REQUEST_ID (the writer commits in batches). */
export async function waitRow(gw, requestId, ms = 5000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const rows = gw.rows(`request_id = '${requestId.replace(/'/g, "''")}'`);
    if (rows.length || Date.now() > deadline) return rows;
    await sleep(25);
  }
}

/** The after() hook of every suite: SIGTERM both, both must exit 0, then the temp files go. */
export async function stopAll(gw, mock) {
  const g = await gw?.stop();
  const m = await mock?.stop();
  assert.equal(g?.code, 0, 'tiergate exits cleanly on SIGTERM');
  assert.equal(m?.code, 0, 'mock exits cleanly');
  gw?.cleanup();
}
