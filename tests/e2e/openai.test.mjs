// openai.test.mjs: the official OpenAI Node SDK (openai 6.49.0, pinned in package-lock.json)
// pointed at tiergate, which forwards to the C mock upstream. The SDK changes nothing but its
// baseURL and gets the same answers, streaming included; tools round-trip; every failure raises
// the SDK error class that matches its status.
//
// The mock's replies are a documented function of the request (tests/mock/README.md): prompt
// tokens = sum over messages of (1 + words), the reply cycles through the last message's words
// (8 by default), so every assertion below is exact.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';
import { startMock, startGateway, closedPort, waitRow, TEST_KEY, stopAll } from './harness.mjs';

let mock, gw, client;

before(async () => {
  mock = await startMock();
  gw = await startGateway(mock);
  // maxRetries 0: each test that wants retries says so. The client's key is not the provider's.
  client = new OpenAI({ apiKey: 'sk-client-key', baseURL: gw.baseURL, maxRetries: 0, timeout: 10000 });
});

after(() => stopAll(gw, mock));

const messages = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'say hello world' },
];

test('the pinned SDK version is the one under test', () => {
  const pkg = new URL('./node_modules/openai/package.json', import.meta.url);
  assert.equal(JSON.parse(readFileSync(pkg, 'utf8')).version, '6.49.0');
});

test('non-streaming: same answer as the upstream, exact usage, gateway headers, log row', async () => {
  const { data, response, request_id } = await client.chat.completions
    .create({ model: 'gpt-4o-mini', messages, seed: 7, mock: { tag: 'e2e-plain' } })
    .withResponse();
  assert.equal(data.object, 'chat.completion');
  assert.equal(data.model, 'gpt-4o-mini');
  assert.equal(data.choices[0].message.role, 'assistant');
  assert.equal(data.choices[0].message.content, 'say hello world say hello world say hello');
  assert.equal(data.choices[0].finish_reason, 'stop');
  assert.deepEqual(
    [data.usage.prompt_tokens, data.usage.completion_tokens, data.usage.total_tokens],
    [8, 8, 16],
  );
  const rid = response.headers.get('x-tiergate-request-id');
  assert.ok(rid && rid.length >= 8, 'x-tiergate-request-id');
  assert.equal(response.headers.get('x-tiergate-route'), 'mock/gpt-4o-mini');
  assert.ok(Number(response.headers.get('x-tiergate-overhead-ms')) >= 0);
  assert.ok(typeof request_id === 'string' || request_id === null);

  // The upstream got the provider key, not the client's, and the SDK's fields untouched.
  const up = await mock.last('e2e-plain');
  assert.equal(up.headers.authorization, `Bearer ${TEST_KEY}`);
  assert.ok(!JSON.stringify(up.headers).includes('sk-client-key'));
  assert.equal(up.body.seed, 7);
  assert.deepEqual(up.body.messages, messages);

  const rows = await waitRow(gw, rid);
  assert.equal(rows.length, 1);
  assert.equal(rows[0].input_tokens, 8);
  assert.equal(rows[0].output_tokens, 8);
  assert.equal(rows[0].http_status, 200);
  assert.equal(rows[0].cost_pusd, 8 * 150000 + 8 * 600000); // gpt-4o-mini $0.15 / $0.60 per 1M
  assert.equal(rows[0].baseline_cost_pusd, 8 * 2500000 + 8 * 10000000); // gpt-4o $2.50 / $10
});

test('model mapping is invisible to the SDK', async () => {
  const c = await client.chat.completions.create({ model: 'mapped', messages, mock: { tag: 'e2e-map' } });
  assert.equal(c.model, 'mapped');
  assert.equal((await mock.last('e2e-map')).body.model, 'gpt-4.1-nano');
});

test('streaming with usage: incremental chunks, final usage chunk, [DONE] handled by the SDK', async () => {
  const stream = await client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages,
    stream: true,
    stream_options: { include_usage: true },
    mock: { cached_tokens: 3 },
  });
  let text = '';
  let chunks = 0;
  let usage = null;
  let finish = null;
  for await (const chunk of stream) {
    chunks++;
    assert.equal(chunk.object, 'chat.completion.chunk');
    assert.equal(chunk.model, 'gpt-4o-mini');
    if (chunk.choices.length) {
      text += chunk.choices[0].delta.content ?? '';
      finish = chunk.choices[0].finish_reason ?? finish;
      assert.equal(chunk.usage, null);
    } else {
      usage = chunk.usage;
    }
  }
  assert.equal(text, 'say hello world say hello world say hello');
  assert.equal(finish, 'stop');
  assert.equal(chunks, 1 + 8 + 1 + 1);
  assert.equal(usage.prompt_tokens, 8);
  assert.equal(usage.completion_tokens, 8);
  assert.equal(usage.prompt_tokens_details.cached_tokens, 3);
});

test('streaming without include_usage: no usage chunk reaches the SDK, the log still has usage', async () => {
  const { data: stream, response } = await client.chat.completions
    .create({ model: 'gpt-4o-mini', messages, stream: true })
    .withResponse();
  const rid = response.headers.get('x-tiergate-request-id');
  let n = 0;
  for await (const chunk of stream) {
    n++;
    assert.equal(chunk.choices.length, 1, 'every chunk has a choice');
    assert.ok(chunk.usage == null);
  }
  assert.equal(n, 1 + 8 + 1);
  const rows = await waitRow(gw, rid);
  assert.equal(rows[0].streamed, 1);
  assert.equal(rows[0].input_tokens, 8);
  assert.equal(rows[0].output_tokens, 8);
});

test('the stream helper assembles the same completion', async () => {
  const runner = client.chat.completions.stream({ model: 'gpt-4o-mini', messages });
  const deltas = [];
  runner.on('content', (d) => deltas.push(d));
  const final = await runner.finalChatCompletion();
  assert.equal(final.choices[0].message.content, 'say hello world say hello world say hello');
  assert.equal(deltas.join(''), final.choices[0].message.content);
});

const weatherTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Weather for a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

test('tool call round trip by hand: call, result, answer built from the result', async () => {
  const history = [{ role: 'user', content: 'What is the weather in Paris?' }];
  const first = await client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: history,
    tools: [weatherTool],
  });
  const msg = first.choices[0].message;
  assert.equal(first.choices[0].finish_reason, 'tool_calls');
  assert.equal(msg.tool_calls.length, 1);
  const call = msg.tool_calls[0];
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.function.arguments), { city: 'mock' });

  history.push(msg, { role: 'tool', tool_call_id: call.id, content: 'sunny 21C' });
  const second = await client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: history,
    tools: [weatherTool],
    mock: { completion_tokens: 4, tag: 'e2e-tool2' },
  });
  assert.equal(second.choices[0].finish_reason, 'stop');
  assert.equal(second.choices[0].message.content, 'sunny 21C sunny 21C');
  // The upstream saw the assistant's call and our tool result, as the SDK sent them.
  const up = await mock.last('e2e-tool2');
  assert.equal(up.body.messages[1].tool_calls[0].id, call.id);
  assert.equal(up.body.messages[2].role, 'tool');
  assert.equal(up.body.messages[2].tool_call_id, call.id);
  assert.equal(up.body.tools[0].function.name, 'get_weather');
});

test('tool call round trip with the SDK runner, streamed', async () => {
  const seen = [];
  const runner = client.chat.completions.runTools({
    model: 'gpt-4o-mini',
    stream: true,
    messages: [{ role: 'user', content: 'Weather in Oslo?' }],
    tools: [
      {
        type: 'function',
        function: {
          name: 'get_weather',
          parameters: weatherTool.function.parameters,
          parse: JSON.parse,
          function: (args) => {
            seen.push(args);
            return 'rain 4C';
          },
        },
      },
    ],
  });
  const content = await runner.finalContent();
  assert.deepEqual(seen, [{ city: 'mock' }]);
  assert.equal(content, 'rain 4C rain 4C rain 4C rain 4C');
});

// ------------------------------------------------------------------ error mapping

async function rejectsWith(promise, Class, status, check) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof Class, `expected ${Class.name}, got ${err?.constructor?.name}: ${err?.message}`);
    assert.equal(err.status, status);
    if (check) check(err);
    return true;
  });
}

test('400 from the gateway: BadRequestError', async () => {
  await rejectsWith(client.chat.completions.create({ model: 'gpt-4o-mini' }), OpenAI.BadRequestError, 400, (e) => {
    assert.equal(e.type, 'invalid_request_error');
    assert.ok(e.headers.get('x-tiergate-request-id'));
  });
  await rejectsWith(
    client.chat.completions.create({ model: 'gpt-4o-mini', messages: 'not an array' }),
    OpenAI.BadRequestError,
    400,
  );
});

test('404 unknown model: NotFoundError with code model_not_found', async () => {
  await rejectsWith(client.chat.completions.create({ model: 'gpt-9-ultra', messages }), OpenAI.NotFoundError, 404, (e) => {
    assert.equal(e.code, 'model_not_found');
    assert.match(e.message, /gpt-9-ultra/);
  });
  await rejectsWith(client.models.retrieve('gpt-9-ultra'), OpenAI.NotFoundError, 404);
});

test('401 provider key missing: AuthenticationError naming the variable', async () => {
  await rejectsWith(client.chat.completions.create({ model: 'nokey-model', messages }), OpenAI.AuthenticationError, 401, (e) =>
    assert.match(e.message, /TIERGATE_TEST_UNSET_KEY/),
  );
});

test('429 passed through: RateLimitError with the upstream error and retry-after', async () => {
  await rejectsWith(
    client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages,
      mock: { status: 429, retry_after: '7', error_message: 'Rate limit reached' },
    }),
    OpenAI.RateLimitError,
    429,
    (e) => {
      assert.equal(e.code, 'rate_limit_exceeded');
      assert.equal(e.message, '429 Rate limit reached');
      assert.equal(e.headers.get('retry-after'), '7');
    },
  );
});

test('SDK retries honour retry-after-ms through the gateway: 3 attempts, then RateLimitError', async () => {
  const before = (await mock.stats()).requests;
  const retrying = new OpenAI({ apiKey: 'k', baseURL: gw.baseURL, maxRetries: 2 });
  const t0 = Date.now();
  await rejectsWith(
    retrying.chat.completions.create({ model: 'gpt-4o-mini', messages, mock: { status: 429, retry_after_ms: '50' } }),
    OpenAI.RateLimitError,
    429,
  );
  assert.equal((await mock.stats()).requests - before, 3, 'one try and two retries reached the upstream');
  assert.ok(Date.now() - t0 >= 100, 'the SDK waited retry-after-ms between tries');
});

test('a flaky upstream (two 503s, then fine): the SDK retries through the gateway and succeeds', async () => {
  const before = (await mock.stats()).requests;
  const retrying = new OpenAI({ apiKey: 'k', baseURL: gw.baseURL, maxRetries: 2 });
  const { data: c, response } = await retrying.chat.completions
    .create({
      model: 'gpt-4o-mini',
      messages,
      mock: { tag: 'e2e-flaky', status: 503, retry_after_ms: '20', fail_times: 2 },
    })
    .withResponse();
  await waitRow(gw, response.headers.get('x-tiergate-request-id'));
  assert.equal(c.choices[0].message.content, 'say hello world say hello world say hello');
  assert.equal((await mock.stats()).requests - before, 3);
  // One log row per attempt the gateway saw: two 503s and a 200.
  const rows = gw.rows("endpoint LIKE 'POST %' ORDER BY id DESC LIMIT 3").map((r) => r.http_status).sort();
  assert.deepEqual(rows, [200, 503, 503]);
});

test('5xx: InternalServerError for upstream 500, 503, and the gateway 502 / 504', async () => {
  await rejectsWith(
    client.chat.completions.create({ model: 'gpt-4o-mini', messages, mock: { status: 500 } }),
    OpenAI.InternalServerError,
    500,
  );
  await rejectsWith(
    client.chat.completions.create({ model: 'gpt-4o-mini', messages, mock: { status: 503, retry_after: '1' } }),
    OpenAI.InternalServerError,
    503,
    (e) => assert.equal(e.headers.get('retry-after'), '1'),
  );
  await rejectsWith(client.chat.completions.create({ model: 'dead-model', messages }), OpenAI.InternalServerError, 502);
  await rejectsWith(
    client.chat.completions.create({ model: 'gpt-4o-mini', messages, mock: { delay_ms: 3000 } }),
    OpenAI.InternalServerError,
    504,
  );
  await rejectsWith(
    client.chat.completions.create({ model: 'dead-model', messages, stream: true }),
    OpenAI.InternalServerError,
    502,
  );
});

test('gateway unreachable: APIConnectionError; too slow for the SDK: APIConnectionTimeoutError', async () => {
  const nowhere = new OpenAI({ apiKey: 'k', baseURL: `http://127.0.0.1:${await closedPort()}/v1`, maxRetries: 0 });
  await assert.rejects(nowhere.chat.completions.create({ model: 'gpt-4o-mini', messages }), (e) => {
    assert.ok(e instanceof OpenAI.APIConnectionError, e?.constructor?.name);
    assert.equal(e.status, undefined);
    return true;
  });
  const impatient = new OpenAI({ apiKey: 'k', baseURL: gw.baseURL, maxRetries: 0, timeout: 300 });
  await assert.rejects(
    impatient.chat.completions.create({ model: 'gpt-4o-mini', messages, mock: { delay_ms: 900, tag: 'e2e-impatient' } }),
    (e) => {
      assert.ok(e instanceof OpenAI.APIConnectionTimeoutError, e?.constructor?.name);
      return true;
    },
  );
  // The SDK hung up: the gateway cancels the upstream call.
  let state;
  for (let i = 0; i < 100 && state !== 'aborted'; i++) {
    state = (await mock.last('e2e-impatient'))?.state;
    if (state !== 'aborted') await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(state, 'aborted');
});

test('an error frame mid-stream makes the SDK throw an APIError after the first chunks', async () => {
  const stream = await client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages,
    stream: true,
    mock: { error_after_chunks: 3, error_message: 'upstream fell over' },
  });
  let text = '';
  await assert.rejects(
    (async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    })(),
    (e) => {
      assert.ok(e instanceof OpenAI.APIError, e?.constructor?.name);
      assert.match(e.message, /upstream fell over/);
      return true;
    },
  );
  assert.equal(text, 'say hello');
});

test('/v1/models lists the configured models in the SDK page format', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids.sort(), ['dead-model', 'gpt-4o', 'gpt-4o-mini', 'mapped', 'nokey-model']);
  const one = await client.models.retrieve('gpt-4o');
  assert.equal(one.id, 'gpt-4o');
  assert.equal(one.object, 'model');
});
