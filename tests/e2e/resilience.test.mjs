// resilience.test.mjs: the official OpenAI Node SDK against tiergate's retries (README
// "Resilience"): the gateway absorbs a flaky upstream so the SDK sees one clean answer, a stream
// whose first event stalls is retried before the SDK sees a byte, and when the gateway gives up
// after its own retries its `x-should-retry: false` stops the SDK from multiplying them (three
// upstream calls, not nine).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startMock, startGateway, waitRow, stopAll } from './harness.mjs';

let mock, gw;

before(async () => {
  mock = await startMock();
  gw = await startGateway(mock, {
    extraModels:
      '  resilient:\n' +
      '    provider: mock\n' +
      '    model: gpt-4o-mini\n' +
      '    retry: {max_attempts: 3, base_delay: 20ms, max_delay: 1s, jitter: none}\n' +
      '    timeouts: {idle: 300ms}\n',
  });
});

after(() => stopAll(gw, mock));

const messages = [{ role: 'user', content: 'say hello world' }];
const answer = 'say hello world say hello world say hello';

test('a flaky upstream (two 503s) is absorbed by the gateway: the SDK sees one success', async () => {
  const client = new OpenAI({ apiKey: 'k', baseURL: gw.baseURL, maxRetries: 0 });
  const before = (await mock.stats()).requests;
  const { data, response } = await client.chat.completions
    .create({ model: 'resilient', messages, mock: { tag: 'e2e-r-flaky', status: 503, fail_times: 2 } })
    .withResponse();
  assert.equal(data.choices[0].message.content, answer);
  assert.equal(response.headers.get('x-tiergate-attempts'), '3');
  assert.equal((await mock.stats()).requests - before, 3);
  const [row] = await waitRow(gw, response.headers.get('x-tiergate-request-id'));
  assert.equal(row.http_status, 200);
  assert.equal(row.attempts, 3);
  const log = JSON.parse(row.attempt_log);
  assert.deepEqual(log.map((a) => a.status), [503, 503, 200]);
  assert.deepEqual(log.map((a) => a.next), ['retry', 'retry', 'answer']);
});

test('a stream whose first event stalls is retried before the SDK sees a byte', async () => {
  const client = new OpenAI({ apiKey: 'k', baseURL: gw.baseURL, maxRetries: 0 });
  const stream = await client.chat.completions.create({
    model: 'resilient',
    messages,
    stream: true,
    mock: { tag: 'e2e-r-ttft', first_chunk_delay_ms: 5000, fail_times: 1 },
  });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  assert.equal(text, answer);
});

test('the gateway gave up after its retries: x-should-retry: false stops the SDK retrying', async () => {
  const client = new OpenAI({ apiKey: 'k', baseURL: gw.baseURL, maxRetries: 2 });
  const before = (await mock.stats()).requests;
  const t0 = Date.now();
  await assert.rejects(
    client.chat.completions.create({ model: 'resilient', messages, mock: { status: 500 } }),
    (e) => {
      assert.ok(e instanceof OpenAI.InternalServerError, `got ${e?.constructor?.name}`);
      assert.equal(e.status, 500);
      assert.equal(e.headers.get('x-should-retry'), 'false');
      assert.equal(e.headers.get('x-tiergate-attempts'), '3');
      return true;
    },
  );
  // without the header the SDK would have tried 3 times, each costing the gateway 3 attempts
  assert.equal((await mock.stats()).requests - before, 3);
  assert.ok(Date.now() - t0 < 3000, 'no SDK backoff happened');
});
