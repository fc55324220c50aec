// anthropic.test.mjs: the official Anthropic Node SDK (@anthropic-ai/sdk 1.12.0, pinned in
// package-lock.json) pointed at tiergate, which serves it from the C mock's Anthropic surface
// (passthrough) and from its OpenAI surface (translated); and the official OpenAI SDK served by
// the mock's Anthropic surface (translated). Plain, streaming (raw events and the
// messages.stream() helper with finalMessage()), tools round trips, count_tokens, the model
// list, and errors raising the SDK class of the translated status.
//
// The mock's replies are a documented function of the request (tests/mock/README.md): prompt
// tokens = (1 + words) per message (+ the system prompt), the reply cycles through the last
// message's words (8 by default), so every assertion is exact.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { startMock, startGateway, waitRow, TEST_KEY, stopAll } from './harness.mjs';

let mock, gw, anthropic, anthropic2023, openai;

before(async () => {
  mock = await startMock();
  gw = await startGateway(mock, {
    extraModels:
      '  claude-haiku-4-5:\n' +
      '    provider: mock-anthropic\n' +
      '  claude-sonnet-4-5:\n' +
      '    provider: mock-anthropic\n' +
      '    model: claude-sonnet-4-5-20250929\n',
  });
  // The Anthropic SDK's baseURL excludes /v1; it sends Authorization: Bearer and
  // anthropic-version 2026-10-21 by default.
  anthropic = new Anthropic({ apiKey: 'sk-ant-client-key', baseURL: gw.url, maxRetries: 0, timeout: 10000 });
  anthropic2023 = new Anthropic({
    apiKey: 'sk-ant-client-key',
    baseURL: gw.url,
    maxRetries: 0,
    timeout: 10000,
    defaultHeaders: { 'anthropic-version': '2023-06-01' },
  });
  openai = new OpenAI({ apiKey: 'sk-client-key', baseURL: gw.baseURL, maxRetries: 0, timeout: 10000 });
});

after(() => stopAll(gw, mock));

const system = 'Be terse.';
const messages = [{ role: 'user', content: 'say hello world' }];
const answer = 'say hello world say hello world say hello';
const weatherTool = {
  name: 'get_weather',
  description: 'Weather for a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

test('the pinned SDK version is the one under test', () => {
  const pkg = new URL('./node_modules/@anthropic-ai/sdk/package.json', import.meta.url);
  assert.equal(JSON.parse(readFileSync(pkg, 'utf8')).version, '1.12.0');
});

// ------------------------------------------------------------------ Anthropic SDK -> Anthropic

test('Anthropic SDK -> Anthropic upstream: plain message, exact usage, headers, log row', async () => {
  const { data, response } = await anthropic.messages
    .create({ model: 'claude-haiku-4-5', max_tokens: 100, system, messages, mock: { tag: 'e2e-a-plain', cached_tokens: 2 } })
    .withResponse();
  assert.equal(data.type, 'message');
  assert.equal(data.role, 'assistant');
  assert.equal(data.model, 'claude-haiku-4-5');
  assert.deepEqual(data.content, [{ type: 'text', text: answer }]);
  assert.equal(data.stop_reason, 'end_turn');
  assert.equal(data.usage.input_tokens, 5);
  assert.equal(data.usage.cache_read_input_tokens, 2);
  assert.equal(data.usage.output_tokens, 8);
  const rid = response.headers.get('x-tiergate-request-id');
  assert.equal(response.headers.get('x-tiergate-route'), 'mock-anthropic/claude-haiku-4-5');
  assert.match(response.headers.get('request-id'), /^req_mock_/);

  const up = await mock.last('e2e-a-plain');
  assert.equal(up.path, '/v1/messages');
  assert.equal(up.headers['x-api-key'], TEST_KEY);
  assert.equal(up.headers['anthropic-version'], '2023-06-01'); // the provider's, not the SDK's
  assert.equal(up.headers.authorization, undefined);
  assert.ok(!JSON.stringify(up).includes('sk-ant-client-key'));

  const [row] = await waitRow(gw, rid);
  assert.equal(row.client_api, 'anthropic');
  assert.equal(row.input_tokens, 7);
  assert.equal(row.cached_tokens, 2);
  assert.equal(row.output_tokens, 8);
  assert.equal(row.cost_pusd, 5 * 1000000 + 2 * 100000 + 8 * 5000000); // haiku 4.5: $1 / $0.10 / $5
});

test('anthropic-version 2026-10-21 refuses temperature; 2023-06-01 accepts it', async () => {
  await assert.rejects(
    anthropic.messages.create({ model: 'claude-haiku-4-5', max_tokens: 10, messages, temperature: 0.5 }),
    (e) => e instanceof Anthropic.BadRequestError && e.status === 400 && e.error?.error?.type === 'invalid_request_error' && /temperature/.test(e.message),
  );
  const m = await anthropic2023.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 10, messages, temperature: 0.5 });
  assert.equal(m.model, 'claude-sonnet-4-5'); // an alias of a dated snapshot, shown by its public name
});

test('Anthropic SDK -> Anthropic upstream: raw stream events and messages.stream().finalMessage()', async () => {
  const stream = await anthropic.messages.create({ model: 'claude-haiku-4-5', max_tokens: 100, system, messages, stream: true });
  const types = [];
  let text = '';
  for await (const ev of stream) {
    types.push(ev.type);
    if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') text += ev.delta.text;
  }
  assert.equal(text, answer);
  assert.equal(types[0], 'message_start');
  assert.equal(types.at(-2), 'message_delta');
  assert.equal(types.at(-1), 'message_stop');

  const helper = anthropic.messages.stream({ model: 'claude-sonnet-4-5', max_tokens: 100, system, messages, mock: { reasoning_tokens: 3 } });
  let streamed = '';
  helper.on('text', (t) => (streamed += t));
  const final = await helper.finalMessage();
  assert.equal(streamed, answer);
  assert.equal(final.model, 'claude-sonnet-4-5');
  assert.equal(final.content.at(-1).text, answer);
  assert.equal(final.content[0].type, 'thinking'); // passthrough keeps thinking blocks
  assert.equal(final.stop_reason, 'end_turn');
  assert.equal(final.usage.output_tokens, 11);
  assert.equal(final.usage.input_tokens, 7);
});

test('Anthropic SDK -> Anthropic upstream: a tool round trip', async () => {
  const first = await anthropic.messages.create({ model: 'claude-haiku-4-5', max_tokens: 100, messages, tools: [weatherTool] });
  assert.equal(first.stop_reason, 'tool_use');
  const call = first.content.find((b) => b.type === 'tool_use');
  assert.equal(call.name, 'get_weather');
  assert.deepEqual(call.input, { city: 'mock' });
  const second = await anthropic.messages.create({
    model: 'claude-haiku-4-5',
    max_tokens: 100,
    tools: [weatherTool],
    messages: [
      ...messages,
      { role: 'assistant', content: first.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: 'sunny' }] },
    ],
  });
  assert.equal(second.stop_reason, 'end_turn');
  assert.equal(second.content[0].text, 'sunny sunny sunny sunny sunny sunny sunny sunny');
});

test('Anthropic SDK: errors in Anthropic shape raise the right classes', async () => {
  await assert.rejects(
    anthropic.messages.create({ model: 'claude-haiku-4-5', max_tokens: 10, messages, mock: { status: 529, error_message: 'Overloaded' } }),
    (e) => e instanceof Anthropic.OverloadedError && e.status === 529 && e.error?.error?.type === 'overloaded_error',
  );
  await assert.rejects(
    anthropic.messages.create({ model: 'no-such-model', max_tokens: 10, messages }),
    (e) => e instanceof Anthropic.NotFoundError && e.error?.type === 'error' && e.error?.error?.type === 'not_found_error' && typeof e.requestID === 'string',
  );
  await assert.rejects(
    anthropic.messages.create({ model: 'claude-haiku-4-5', messages }),
    (e) => e instanceof Anthropic.BadRequestError && /max_tokens/.test(e.message),
  );
  // mid-stream: the SDK throws on the error event (it has an event: line)
  const stream = await anthropic.messages.create({
    model: 'claude-haiku-4-5', max_tokens: 100, messages, stream: true, mock: { error_after_chunks: 4 },
  });
  await assert.rejects(async () => {
    for await (const _ of stream) { /* drain */ }
  }, (e) => e instanceof Anthropic.APIError && /Overloaded/.test(e.message));
});

test('Anthropic SDK: countTokens and models.list', async () => {
  const n = await anthropic.messages.countTokens({ model: 'claude-haiku-4-5', system, messages });
  assert.equal(n.input_tokens, 7);
  const est = await anthropic.messages.countTokens({ model: 'gpt-4o-mini', messages }).withResponse();
  assert.equal(est.response.headers.get('x-tiergate-token-count'), 'estimate');
  assert.equal(est.data.input_tokens, Math.floor((15 + 3) / 4) + 3);
  const ids = [];
  for await (const m of anthropic.models.list()) ids.push(m.id);
  assert.ok(ids.includes('claude-haiku-4-5') && ids.includes('gpt-4o-mini'));
});

// ------------------------------------------------------------------ Anthropic SDK -> OpenAI

test('Anthropic SDK -> OpenAI upstream (translated): plain, usage, log row', async () => {
  const { data, response } = await anthropic.messages
    .create({ model: 'gpt-4o-mini', max_tokens: 100, system, messages, mock: { tag: 'e2e-a2o' } })
    .withResponse();
  assert.equal(data.type, 'message');
  assert.equal(data.model, 'gpt-4o-mini');
  assert.deepEqual(data.content, [{ type: 'text', text: answer }]);
  assert.equal(data.stop_reason, 'end_turn');
  assert.equal(data.usage.input_tokens, 7);
  assert.equal(data.usage.output_tokens, 8);
  const up = await mock.last('e2e-a2o');
  assert.equal(up.path, '/v1/chat/completions');
  assert.equal(up.headers.authorization, `Bearer ${TEST_KEY}`);
  assert.deepEqual(up.body.messages, [{ role: 'system', content: system }, ...messages]);
  assert.equal(up.body.max_completion_tokens, 100);
  const [row] = await waitRow(gw, response.headers.get('x-tiergate-request-id'));
  assert.equal(row.client_api, 'anthropic');
  assert.equal(row.provider, 'mock');
  assert.equal(row.cost_pusd, 7 * 150000 + 8 * 600000);
});

test('Anthropic SDK -> OpenAI upstream: messages.stream() helper and finalMessage()', async () => {
  const helper = anthropic.messages.stream({ model: 'gpt-4o-mini', max_tokens: 100, system, messages });
  let streamed = '';
  helper.on('text', (t) => (streamed += t));
  const final = await helper.finalMessage();
  assert.equal(streamed, answer);
  assert.equal(final.content.length, 1);
  assert.equal(final.content[0].text, answer);
  assert.equal(final.stop_reason, 'end_turn');
  assert.equal(final.usage.input_tokens, 7);
  assert.equal(final.usage.output_tokens, 8);
});

test('Anthropic SDK -> OpenAI upstream: streamed tool use and a round trip', async () => {
  const helper = anthropic.messages.stream({ model: 'gpt-4o-mini', max_tokens: 100, messages, tools: [weatherTool] });
  const first = await helper.finalMessage();
  assert.equal(first.stop_reason, 'tool_use');
  const call = first.content.find((b) => b.type === 'tool_use');
  assert.equal(call.name, 'get_weather');
  assert.deepEqual(call.input, { city: 'mock' });
  const second = await anthropic.messages.create({
    model: 'gpt-4o-mini',
    max_tokens: 100,
    tools: [weatherTool],
    messages: [
      ...messages,
      { role: 'assistant', content: first.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: 'cloudy' }] },
    ],
  });
  assert.equal(second.stop_reason, 'end_turn');
  assert.equal(second.content[0].text, 'cloudy cloudy cloudy cloudy cloudy cloudy cloudy cloudy');
});

test('Anthropic SDK -> OpenAI upstream: translated errors (429, 503 -> 529)', async () => {
  await assert.rejects(
    anthropic.messages.create({ model: 'gpt-4o-mini', max_tokens: 10, messages, mock: { status: 429, retry_after: '1' } }),
    (e) => e instanceof Anthropic.RateLimitError && e.error?.error?.type === 'rate_limit_error' && e.headers.get('retry-after') === '1',
  );
  await assert.rejects(
    anthropic.messages.create({ model: 'gpt-4o-mini', max_tokens: 10, messages, mock: { status: 503 } }),
    (e) => e instanceof Anthropic.OverloadedError && e.status === 529,
  );
});

// ------------------------------------------------------------------ OpenAI SDK -> Anthropic

test('OpenAI SDK -> Anthropic upstream (translated): plain completion, usage with cache', async () => {
  const { data, response } = await openai.chat.completions
    .create({
      model: 'claude-haiku-4-5',
      messages: [{ role: 'system', content: system }, ...messages],
      mock: { tag: 'e2e-o2a', cached_tokens: 3 },
    })
    .withResponse();
  assert.equal(data.object, 'chat.completion');
  assert.equal(data.model, 'claude-haiku-4-5');
  assert.equal(data.choices[0].message.content, answer);
  assert.equal(data.choices[0].finish_reason, 'stop');
  assert.equal(data.usage.prompt_tokens, 7); // includes the 3 cached, as OpenAI counts
  assert.equal(data.usage.prompt_tokens_details.cached_tokens, 3);
  assert.equal(data.usage.completion_tokens, 8);
  const up = await mock.last('e2e-o2a');
  assert.equal(up.path, '/v1/messages');
  assert.equal(up.headers['x-api-key'], TEST_KEY);
  assert.equal(up.body.system, system);
  assert.deepEqual(up.body.messages, messages);
  const [row] = await waitRow(gw, response.headers.get('x-tiergate-request-id'));
  assert.equal(row.client_api, 'openai');
  assert.equal(row.provider, 'mock-anthropic');
  assert.equal(row.cost_pusd, 4 * 1000000 + 3 * 100000 + 8 * 5000000);
});

test('OpenAI SDK -> Anthropic upstream: streaming with usage', async () => {
  const stream = await openai.chat.completions.create({
    model: 'claude-haiku-4-5',
    messages,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.choices.length) {
      text += chunk.choices[0].delta.content ?? '';
      finish = chunk.choices[0].finish_reason ?? finish;
    } else {
      usage = chunk.usage;
    }
  }
  assert.equal(text, answer);
  assert.equal(finish, 'stop');
  assert.equal(usage.prompt_tokens, 4);
  assert.equal(usage.completion_tokens, 8);
});

test('OpenAI SDK -> Anthropic upstream: streamed tool call arguments, then a round trip', async () => {
  const tools = [{ type: 'function', function: { name: 'get_weather', parameters: weatherTool.input_schema } }];
  const runner = openai.chat.completions.stream({ model: 'claude-haiku-4-5', messages, tools });
  const first = await runner.finalChatCompletion();
  const msg = first.choices[0].message;
  assert.equal(first.choices[0].finish_reason, 'tool_calls');
  assert.equal(msg.tool_calls.length, 1);
  assert.equal(msg.tool_calls[0].function.name, 'get_weather');
  assert.deepEqual(JSON.parse(msg.tool_calls[0].function.arguments), { city: 'mock' });
  const second = await openai.chat.completions.create({
    model: 'claude-haiku-4-5',
    tools,
    messages: [...messages, msg, { role: 'tool', tool_call_id: msg.tool_calls[0].id, content: 'windy' }],
  });
  assert.equal(second.choices[0].finish_reason, 'stop');
  assert.equal(second.choices[0].message.content, 'windy windy windy windy windy windy windy windy');
});

test('OpenAI SDK -> Anthropic upstream: translated errors (529 -> 503, n > 1 -> 400)', async () => {
  await assert.rejects(
    openai.chat.completions.create({ model: 'claude-haiku-4-5', messages, mock: { status: 529 } }),
    (e) => e instanceof OpenAI.InternalServerError && e.status === 503 && e.code === 'server_is_overloaded',
  );
  await assert.rejects(
    openai.chat.completions.create({ model: 'claude-haiku-4-5', messages, n: 2 }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'n',
  );
  const stream = await openai.chat.completions.create({
    model: 'claude-haiku-4-5', messages, stream: true, mock: { error_after_chunks: 4 },
  });
  await assert.rejects(async () => {
    for await (const _ of stream) { /* drain */ }
  }, (e) => e instanceof OpenAI.APIError && /Overloaded/.test(e.message));
});
