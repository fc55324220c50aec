// local.test.mjs: the official OpenAI (6.49.0) and Anthropic (1.12.0) Node SDKs against tiergate
// answering from its in-process engine, on examples/local.yaml exactly as shipped (public model
// `local` from $TIERGATE_LOCAL_MODEL, gpt-4o-mini upstream as its fallback, here the C mock).
//
// Two gateways run the same suite: one on stories260K (a trained llama, SentencePiece vocab) and
// one on tiny-qwen2-Q8_0 (random weights, byte-level BPE), both with a 256-token context. A third,
// with one slot and no queue, checks that a busy local model falls back to the mock upstream and
// that a disconnected stream frees its slot. Every assertion is exact: the greedy text of one
// request is the reference the others (streamed, the stream helpers, the other SDK, stop
// sequences, max_tokens, top_k 1, logprobs, 16 concurrent streams) must reproduce; token counts
// are compared across surfaces and with the log rows, which are read with the sqlite3 CLI after
// the gateway has stopped.
//
// Needs ../shared/models (TIERGATE_SHARED_DIR, else the folder next to the repository).

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { startMock, startGateway, TEST_KEY } from './harness.mjs';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const SHARED = resolve(process.env.TIERGATE_SHARED_DIR || join(REPO, '..', 'shared'));
const EXAMPLE = join(REPO, 'examples', 'local.yaml');
const CONTEXT = 256;

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** The variables examples/local.yaml reads, every one set here (none inherited). */
function localEnv(mock, model, over = {}) {
  const file = join(SHARED, 'models', model);
  assert.ok(existsSync(file), `${file} is missing (set TIERGATE_SHARED_DIR)`);
  return {
    TIERGATE_LOCAL_MODEL: file,
    TIERGATE_LISTEN: '127.0.0.1:0',
    TIERGATE_LOCAL_THREADS: undefined,
    TIERGATE_LOCAL_CONTEXT: undefined,
    TIERGATE_LOCAL_SLOTS: undefined,
    TIERGATE_LOCAL_QUEUE: undefined,
    OPENAI_BASE_URL: `${mock.url}/v1`,
    OPENAI_API_KEY: TEST_KEY,
    ANTHROPIC_BASE_URL: mock.url, // never the real API, though no test routes there
    ANTHROPIC_API_KEY: TEST_KEY,
    ...over,
  };
}

/** A fetch for the SDKs that notes every response's request id, route and status. */
function recorder() {
  const seen = [];
  const f = async (url, init) => {
    const r = await fetch(url, init);
    const error = r.status >= 400 ? (await r.clone().json()).error.message : null;
    seen.push({
      error,
      id: r.headers.get('x-tiergate-request-id'),
      route: r.headers.get('x-tiergate-route'),
      status: r.status,
      method: init?.method ?? 'GET',
      path: new URL(String(url)).pathname,
      body: typeof init?.body === 'string' ? init.body : null,
    });
    return r;
  };
  return { seen, fetch: f };
}

function clients(gw, rec) {
  const common = { apiKey: 'any-client-key', maxRetries: 0, timeout: 30000, fetch: rec.fetch };
  return {
    openai: new OpenAI({ ...common, baseURL: gw.baseURL }),
    // 2023-06-01: the version that has temperature and top_k (2026-10-21, the SDK's default,
    // refuses them; checked below)
    anthropic: new Anthropic({ ...common, baseURL: gw.url, defaultHeaders: { 'anthropic-version': '2023-06-01' } }),
    anthropic2026: new Anthropic({ ...common, baseURL: gw.url }),
  };
}

async function rejectsWith(promise, Class, status, check) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof Class, `expected ${Class.name}, got ${err?.constructor?.name}: ${err?.message}`);
    assert.equal(err.status, status);
    if (check) check(err);
    return true;
  });
}

/** Text, finish reason, usage and chunk count of an OpenAI stream. */
async function drainChat(stream) {
  let text = '';
  let finish = null;
  let usage = null;
  let role = null;
  const logprobs = [];
  for await (const ch of stream) {
    assert.equal(ch.object, 'chat.completion.chunk');
    assert.equal(ch.model, 'local');
    if (!ch.choices.length) {
      usage = ch.usage;
      continue;
    }
    const c = ch.choices[0];
    role = c.delta.role ?? role;
    text += c.delta.content ?? '';
    if (c.logprobs?.content) logprobs.push(...c.logprobs.content);
    finish = c.finish_reason ?? finish;
  }
  return { text, finish, usage, role, logprobs };
}

/** The value of a local-model metric (provider local) in /metrics, fetched through REC. */
async function metric(gw, rec, name) {
  const text = await (await rec.fetch(`${gw.url}/metrics`)).text();
  const m = text.match(new RegExp(`^${name}\\{provider="local"\\} (\\S+)$`, 'm'));
  assert.ok(m, `${name} is in /metrics`);
  return Number(m[1]);
}

/**
 * A stop string cut from TEXT: 3 characters at their first occurrence, from the middle on;
 * printable ASCII when there is such a place (the random-weight model's text is mostly
 * control characters and U+FFFD), else any.
 */
function stopFrom(text) {
  for (const ok of [(s) => /^[!-~]{3}$/.test(s), (s) => s.trim() === s]) {
    for (let p = Math.floor(text.length / 2); p < text.length - 3; p++) {
      const s = text.slice(p, p + 3);
      if (text.indexOf(s) === p && ok(s)) return { stop: s, at: p };
    }
  }
  for (let p = Math.floor(text.length / 2); p > 0; p--) {
    const s = text.slice(p, p + 3);
    if (text.indexOf(s) === p && s.length === 3) return { stop: s, at: p };
  }
  throw new Error(`no usable stop string in ${JSON.stringify(text)}`);
}

const system = 'You tell short stories.';
const user = 'Once upon a time, there was a little cat';
const oaMessages = [
  { role: 'system', content: system },
  { role: 'user', content: user },
];
const anMessages = [{ role: 'user', content: user }];
const N = 48; // greedy tokens of the reference answer

// ------------------------------------------------------------------ one suite per model

for (const { file, embd } of [
  { file: 'stories260K.gguf', embd: 64 },
  { file: 'tiny-qwen2-Q8_0.gguf', embd: 256 },
]) {
  describe(`local model ${file}`, () => {
    let mock, gw, rec, openai, anthropic, anthropic2026;
    let stopped = false;
    const ref = {}; // the greedy reference: text, usage, request id
    const refusedBySurface = []; // request ids refused before a model was chosen (no route)

    before(async () => {
      mock = await startMock();
      gw = await startGateway(mock, {
        configPath: EXAMPLE,
        env: localEnv(mock, file, { TIERGATE_LOCAL_CONTEXT: CONTEXT }),
      });
      rec = recorder();
      ({ openai, anthropic, anthropic2026 } = clients(gw, rec));
    });

    after(async () => {
      if (!stopped) await gw?.stop();
      await mock?.stop();
      gw?.cleanup();
    });

    test('openai: plain, stream: true and the .stream() helper give the same greedy text and usage', async () => {
      const base = { model: 'local', messages: oaMessages, temperature: 0, max_tokens: N };
      const { data: plain, response } = await openai.chat.completions.create(base).withResponse();
      assert.equal(response.headers.get('x-tiergate-route'), 'local/local');
      assert.equal(plain.object, 'chat.completion');
      assert.equal(plain.model, 'local');
      assert.match(plain.id, /^chatcmpl-/);
      assert.equal(plain.choices.length, 1);
      const msg = plain.choices[0].message;
      assert.equal(msg.role, 'assistant');
      const text = msg.content;
      assert.ok(text.length >= 8, `a greedy answer of some length: ${JSON.stringify(text)}`);
      const u = plain.usage;
      assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
      assert.ok(u.completion_tokens >= 1 && u.completion_tokens <= N);
      assert.equal(plain.choices[0].finish_reason, u.completion_tokens === N ? 'length' : 'stop');
      Object.assign(ref, { text, usage: u, finish: plain.choices[0].finish_reason, id: response.headers.get('x-tiergate-request-id') });

      const s = await drainChat(
        await openai.chat.completions.create({ ...base, stream: true, stream_options: { include_usage: true } }),
      );
      assert.equal(s.role, 'assistant');
      assert.equal(s.text, text);
      assert.equal(s.finish, ref.finish);
      assert.deepEqual(
        [s.usage.prompt_tokens, s.usage.completion_tokens, s.usage.total_tokens],
        [u.prompt_tokens, u.completion_tokens, u.total_tokens],
      );
      // the second request's prompt is the first one's: its prefix comes from a slot's cache
      assert.ok(s.usage.prompt_tokens_details.cached_tokens > 0, 'prefix reuse reported');
      assert.ok(s.usage.prompt_tokens_details.cached_tokens < u.prompt_tokens);

      const runner = openai.chat.completions.stream({ ...base, stream_options: { include_usage: true } });
      const deltas = [];
      runner.on('content', (d) => deltas.push(d));
      const final = await runner.finalChatCompletion();
      assert.equal(final.choices[0].message.content, text);
      assert.equal(final.choices[0].finish_reason, ref.finish);
      assert.equal(deltas.join(''), text);
      const tu = await runner.totalUsage();
      assert.deepEqual(
        [tu.prompt_tokens, tu.completion_tokens, tu.total_tokens],
        [u.prompt_tokens, u.completion_tokens, u.total_tokens],
      );

      // the same conversation asked the Anthropic way is the same prompt: same count, same text
      const ct = await anthropic.messages.countTokens({ model: 'local', system, messages: anMessages });
      assert.equal(ct.input_tokens, u.prompt_tokens);
      const am = await anthropic.messages.create({ model: 'local', system, messages: anMessages, max_tokens: N, temperature: 0 });
      assert.equal(am.content[0].text, text);
      assert.equal(am.usage.output_tokens, u.completion_tokens);
    });

    test('openai: the same seed repeats a sampled answer (plain and streamed); other seeds differ', async () => {
      const base = { model: 'local', messages: oaMessages, temperature: 1, max_tokens: 24 };
      const a = await openai.chat.completions.create({ ...base, seed: 1234 });
      const b = await openai.chat.completions.create({ ...base, seed: 1234 });
      assert.equal(b.choices[0].message.content, a.choices[0].message.content);
      const s = await drainChat(await openai.chat.completions.create({ ...base, seed: 1234, stream: true }));
      assert.equal(s.text, a.choices[0].message.content);
      const others = [];
      for (const seed of [1, 2, 3]) {
        others.push((await openai.chat.completions.create({ ...base, seed })).choices[0].message.content);
      }
      assert.ok(
        others.some((t) => t !== a.choices[0].message.content),
        `temperature 1 samples: seeds 1, 2, 3 and 1234 all gave ${JSON.stringify(a.choices[0].message.content)}`,
      );
    });

    test('openai: stop cuts exactly before the stop string (plain and streamed), finish_reason stop', async () => {
      const { stop, at } = stopFrom(ref.text);
      const base = { model: 'local', messages: oaMessages, temperature: 0, max_tokens: N };
      const c = await openai.chat.completions.create({ ...base, stop: ['\u0001never', stop] });
      assert.equal(c.choices[0].message.content, ref.text.slice(0, at), `stop ${JSON.stringify(stop)}`);
      assert.equal(c.choices[0].finish_reason, 'stop');
      assert.ok(c.usage.completion_tokens < ref.usage.completion_tokens);
      const s = await drainChat(await openai.chat.completions.create({ ...base, stop, stream: true }));
      assert.equal(s.text, ref.text.slice(0, at));
      assert.equal(s.finish, 'stop');
    });

    test('openai: max_tokens (and max_completion_tokens) cut the greedy text, finish_reason length', async () => {
      const c = await openai.chat.completions.create({ model: 'local', messages: oaMessages, temperature: 0, max_tokens: 5 });
      assert.equal(c.choices[0].finish_reason, 'length');
      assert.equal(c.usage.completion_tokens, 5);
      assert.ok(ref.text.startsWith(c.choices[0].message.content), JSON.stringify(c.choices[0].message.content));
      assert.ok(c.choices[0].message.content.length > 0 && c.choices[0].message.content.length < ref.text.length);
      const s = await drainChat(
        await openai.chat.completions.create({
          model: 'local',
          messages: oaMessages,
          temperature: 0,
          max_completion_tokens: 7,
          stream: true,
          stream_options: { include_usage: true },
        }),
      );
      assert.equal(s.finish, 'length');
      assert.equal(s.usage.completion_tokens, 7);
      assert.ok(ref.text.startsWith(s.text) && s.text.length > c.choices[0].message.content.length);
    });

    test('openai: logprobs with top_logprobs, the same plain and streamed', async () => {
      const base = { model: 'local', messages: oaMessages, temperature: 0, max_tokens: 8, logprobs: true, top_logprobs: 3 };
      const c = await openai.chat.completions.create(base);
      const content = c.choices[0].message.content;
      const lp = c.choices[0].logprobs.content;
      assert.equal(lp.length, c.usage.completion_tokens);
      assert.ok(ref.text.startsWith(content));
      // the tokens' bytes are the text
      assert.equal(Buffer.from(lp.flatMap((t) => t.bytes)).toString('utf8'), content);
      for (const t of lp) {
        assert.ok(t.logprob <= 0, `logprob ${t.logprob}`);
        assert.equal(t.top_logprobs.length, 3);
        // greedy: the chosen token is the most likely one
        assert.equal(t.top_logprobs[0].logprob, t.logprob);
        assert.deepEqual(t.top_logprobs[0].bytes, t.bytes);
        for (let k = 1; k < 3; k++) assert.ok(t.top_logprobs[k].logprob <= t.top_logprobs[k - 1].logprob);
        assert.ok(t.top_logprobs.reduce((a, x) => a + Math.exp(x.logprob), 0) <= 1 + 1e-5);
      }
      const s = await drainChat(await openai.chat.completions.create({ ...base, stream: true }));
      assert.equal(s.text, content);
      assert.deepEqual(s.logprobs, lp);
    });

    test('openai: embeddings (string, list, the SDK\'s base64 default decoded to floats) are unit vectors', async () => {
      const one = await openai.embeddings.create({ model: 'local', input: 'a little cat' });
      const sent = rec.seen.at(-1);
      assert.equal(JSON.parse(sent.body).encoding_format, 'base64', 'the SDK asked for base64');
      assert.equal(sent.route, 'local/local');
      assert.equal(one.object, 'list');
      assert.equal(one.model, 'local');
      assert.equal(one.data.length, 1);
      const v = one.data[0].embedding;
      assert.ok(Array.isArray(v), 'decoded to an array of numbers');
      assert.equal(v.length, embd);
      const norm = (x) => Math.sqrt(x.reduce((a, y) => a + y * y, 0));
      assert.ok(Math.abs(norm(v) - 1) < 1e-5, `norm ${norm(v)}`);
      assert.ok(one.usage.prompt_tokens > 0);
      assert.equal(one.usage.total_tokens, one.usage.prompt_tokens);

      const fl = await openai.embeddings.create({ model: 'local', input: 'a little cat', encoding_format: 'float' });
      assert.deepEqual(fl.data[0].embedding.map(Math.fround), v, 'float and base64 carry the same float32s');

      const dog = await openai.embeddings.create({ model: 'local', input: 'the big dog' });
      const list = await openai.embeddings.create({ model: 'local', input: ['a little cat', 'the big dog'] });
      assert.deepEqual(list.data.map((d) => d.index), [0, 1]);
      for (const [i, want] of [v, dog.data[0].embedding].entries()) {
        const got = list.data[i].embedding;
        assert.equal(got.length, embd);
        assert.ok(Math.abs(norm(got) - 1) < 1e-5);
        assert.ok(Math.max(...got.map((x, k) => Math.abs(x - want[k]))) < 1e-5, `input ${i} alone and in a list`);
      }
      assert.ok(Math.max(...v.map((x, k) => Math.abs(x - dog.data[0].embedding[k]))) > 1e-3, 'different texts');
      assert.equal(list.usage.prompt_tokens, one.usage.prompt_tokens + dog.usage.prompt_tokens);
    });

    test('openai: models.list shows local with its context length', async () => {
      const all = [];
      for await (const m of openai.models.list()) all.push(m);
      assert.deepEqual(all.map((m) => m.id).sort(), ['claude-haiku-4-5', 'gpt-4o', 'gpt-4o-mini', 'local']);
      const local = all.find((m) => m.id === 'local');
      assert.equal(local.object, 'model');
      assert.equal(local.owned_by, 'local');
      assert.equal(local.context_length, CONTEXT);
    });

    test('anthropic: create, messages.stream() + finalMessage() and the raw events give the same text', async () => {
      const base = { model: 'local', system, messages: anMessages, max_tokens: N, temperature: 0 };
      const { data: m, response } = await anthropic.messages.create(base).withResponse();
      assert.equal(response.headers.get('x-tiergate-route'), 'local/local');
      assert.equal(m.type, 'message');
      assert.equal(m.role, 'assistant');
      assert.equal(m.model, 'local');
      assert.match(m.id, /^msg_/);
      assert.equal(m.content.length, 1);
      assert.equal(m.content[0].type, 'text');
      assert.equal(m.content[0].text, ref.text);
      assert.equal(m.stop_reason, ref.finish === 'length' ? 'max_tokens' : 'end_turn');
      assert.equal(m.stop_sequence, null);
      assert.equal(m.usage.output_tokens, ref.usage.completion_tokens);
      assert.equal(m.usage.input_tokens + m.usage.cache_read_input_tokens, ref.usage.prompt_tokens);

      const stream = anthropic.messages.stream(base);
      let deltas = '';
      stream.on('text', (t) => (deltas += t));
      const fm = await stream.finalMessage();
      assert.equal(fm.content[0].text, ref.text);
      assert.equal(deltas, ref.text);
      assert.equal(fm.stop_reason, m.stop_reason);
      assert.equal(fm.usage.output_tokens, m.usage.output_tokens);

      const events = await anthropic.messages.create({ ...base, stream: true });
      const types = [];
      let text = '';
      let last = null;
      for await (const ev of events) {
        types.push(ev.type);
        if (ev.type === 'content_block_delta') text += ev.delta.text;
        if (ev.type === 'message_delta') last = ev;
        if (ev.type === 'message_start') assert.equal(ev.message.model, 'local');
      }
      const nd = types.filter((t) => t === 'content_block_delta').length;
      assert.ok(nd >= 1);
      assert.deepEqual(types, [
        'message_start',
        'content_block_start',
        ...Array(nd).fill('content_block_delta'),
        'content_block_stop',
        'message_delta',
        'message_stop',
      ]);
      assert.equal(text, ref.text);
      assert.equal(last.delta.stop_reason, m.stop_reason);
      assert.equal(last.usage.output_tokens, m.usage.output_tokens);

      // on the wire: every frame's event: line names its data's type, a ping after the block start
      const wire = await (await anthropic.messages.create({ ...base, stream: true }).asResponse()).text();
      const frames = [...wire.matchAll(/^event: (\S+)\ndata: (.*)$/gm)].map(([, e, d]) => [e, JSON.parse(d)]);
      for (const [e, d] of frames) assert.equal(d.type, e);
      // (how many tokens one delta carries depends on timing: count this stream's own)
      const wd = frames.filter(([e]) => e === 'content_block_delta');
      assert.deepEqual(frames.map(([e]) => e), [
        'message_start',
        'content_block_start',
        'ping',
        ...Array(wd.length).fill('content_block_delta'),
        'content_block_stop',
        'message_delta',
        'message_stop',
      ]);
      assert.equal(wd.map(([, d]) => d.delta.text).join(''), ref.text);
      assert.equal(wire.split('\n\n').filter((f) => f.trim()).length, frames.length, 'no frame without its event: line');
    });

    test('anthropic: stop_sequences cut exactly, stop_reason stop_sequence with the sequence', async () => {
      const { stop, at } = stopFrom(ref.text);
      const base = { model: 'local', system, messages: anMessages, max_tokens: N, temperature: 0, stop_sequences: ['\u0001never', stop] };
      const m = await anthropic.messages.create(base);
      assert.equal(m.content[0].text, ref.text.slice(0, at));
      assert.equal(m.stop_reason, 'stop_sequence');
      assert.equal(m.stop_sequence, stop);
      const fm = await anthropic.messages.stream(base).finalMessage();
      assert.equal(fm.content[0].text, ref.text.slice(0, at));
      assert.equal(fm.stop_reason, 'stop_sequence');
      assert.equal(fm.stop_sequence, stop);
    });

    test('anthropic: max_tokens gives stop_reason max_tokens; top_k 1 samples the greedy text', async () => {
      const m = await anthropic.messages.create({ model: 'local', system, messages: anMessages, max_tokens: 6, temperature: 0 });
      assert.equal(m.stop_reason, 'max_tokens');
      assert.equal(m.usage.output_tokens, 6);
      assert.ok(ref.text.startsWith(m.content[0].text) && m.content[0].text.length > 0);
      // temperature 1 with only the most likely token left: the greedy answer, whatever the seed
      for (let i = 0; i < 2; i++) {
        const k = await anthropic.messages.create({ model: 'local', system, messages: anMessages, max_tokens: N, temperature: 1, top_k: 1 });
        assert.equal(k.content[0].text, ref.text);
      }
      // the SDK's default version (2026-10-21) has no sampling parameters
      await rejectsWith(
        anthropic2026.messages.create({ model: 'local', messages: anMessages, max_tokens: 4, top_k: 1 }),
        Anthropic.BadRequestError,
        400,
        (e) => {
          assert.match(e.message, /top_k/);
          refusedBySurface.push(e.headers.get('x-tiergate-request-id'));
        },
      );
    });

    test('anthropic: countTokens is exact (input + cache read of a create), multi-turn too', async () => {
      const turns = [
        { role: 'user', content: 'Tell me about a dog.' },
        { role: 'assistant', content: 'The dog was big and happy.' },
        { role: 'user', content: [{ type: 'text', text: 'And then?' }] },
      ];
      for (const msgs of [anMessages, turns]) {
        const ct = await anthropic.messages.countTokens({ model: 'local', system, messages: msgs });
        const m = await anthropic.messages.create({ model: 'local', system, messages: msgs, max_tokens: 2, temperature: 0 });
        assert.equal(m.usage.input_tokens + m.usage.cache_read_input_tokens, ct.input_tokens);
        assert.equal(m.usage.cache_creation_input_tokens, 0);
        const o = await openai.chat.completions.create({
          model: 'local',
          messages: [{ role: 'system', content: system }, ...msgs],
          max_tokens: 2,
          temperature: 0,
        });
        assert.equal(o.usage.prompt_tokens, ct.input_tokens);
      }
    });

    test('errors through the SDKs: BadRequestError for what a local model cannot do, never the fallback', async () => {
      const before = (await mock.stats()).requests;
      await rejectsWith(openai.chat.completions.create({ model: 'local', messages: oaMessages, n: 2 }), OpenAI.BadRequestError, 400, (e) => {
        assert.equal(e.param, 'n');
        assert.equal(e.type, 'invalid_request_error');
      });
      await rejectsWith(
        openai.chat.completions.create({
          model: 'local',
          messages: [
            {
              role: 'user',
              content: [
                { type: 'text', text: 'What is this?' },
                { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
              ],
            },
          ],
        }),
        OpenAI.BadRequestError,
        400,
        (e) => {
          assert.equal(e.param, 'messages[0].content[1]');
          assert.match(e.message, /images are not supported/);
        },
      );
      await rejectsWith(
        openai.chat.completions.create({
          model: 'local',
          messages: oaMessages,
          tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: {} } } }],
        }),
        OpenAI.BadRequestError,
        400,
        // tool_choice auto (the default with tools): a local model calls tools only when required
        (e) => assert.equal(e.param, 'tool_choice'),
      );
      await rejectsWith(
        anthropic.messages.create({
          model: 'local',
          max_tokens: 8,
          messages: [
            {
              role: 'user',
              content: [
                { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
                { type: 'text', text: 'What is this?' },
              ],
            },
          ],
        }),
        Anthropic.BadRequestError,
        400,
        (e) => {
          assert.equal(e.error?.error?.type, 'invalid_request_error');
          assert.match(e.message, /images are not supported/);
        },
      );

      // a prompt longer than the context: a 400 that says the limit and the prompt's size
      const long = 'the little cat sat on the big mat and looked at the sun. '.repeat(40);
      const ct = await anthropic.messages.countTokens({ model: 'local', messages: [{ role: 'user', content: long }] });
      assert.ok(ct.input_tokens > CONTEXT);
      await rejectsWith(
        openai.chat.completions.create({ model: 'local', messages: [{ role: 'user', content: long }] }),
        OpenAI.BadRequestError,
        400,
        (e) => {
          assert.equal(e.code, 'context_length_exceeded');
          assert.match(e.message, new RegExp(`maximum context length is ${CONTEXT} tokens\\. However, your messages resulted in ${ct.input_tokens} tokens`));
        },
      );
      await rejectsWith(
        anthropic.messages.create({ model: 'local', max_tokens: 8, messages: [{ role: 'user', content: long }] }),
        Anthropic.BadRequestError,
        400,
        (e) => assert.match(e.message, new RegExp(`maximum context length is ${CONTEXT} tokens`)),
      );
      await rejectsWith(
        openai.chat.completions.create({ model: 'local', messages: [{ role: 'user', content: long }], stream: true }),
        OpenAI.BadRequestError,
        400,
        (e) => assert.match(e.message, /maximum context length/),
      );
      assert.equal((await mock.stats()).requests, before, 'a 400 is not a reason to fall back');
    });

    test('16 concurrent streams each equal the same request alone', async () => {
      const names = ['Tom', 'Lily', 'Ben', 'Sue', 'Max', 'Amy', 'Sam', 'Mia', 'Tim', 'Zoe', 'Bob', 'Ann', 'Joe', 'Eve', 'Dan', 'Kim'];
      const req = (n) => ({
        model: 'local',
        messages: [
          { role: 'system', content: system },
          { role: 'user', content: `${n} went to the park with a red ball` },
        ],
        temperature: 0,
        max_tokens: 24,
        stream: true,
        stream_options: { include_usage: true },
      });
      const steps = () => metric(gw, rec, 'tiergate_local_steps_total');
      const s0 = await steps();
      const alone = [];
      for (const n of names) alone.push(await drainChat(await openai.chat.completions.create(req(n))));
      assert.ok(new Set(alone.map((a) => a.text)).size > 1, 'the prompts give different answers');
      const s1 = await steps();
      const together = await Promise.all(names.map(async (n) => drainChat(await openai.chat.completions.create(req(n)))));
      const s2 = await steps();
      // decoded together (4 slots): far fewer engine steps than one after the other
      assert.ok(s2 - s1 < 0.6 * (s1 - s0), `steps alone ${s1 - s0}, together ${s2 - s1}`);
      for (const [i, t] of together.entries()) {
        assert.equal(t.text, alone[i].text, `stream ${i} (${names[i]})`);
        assert.equal(t.finish, alone[i].finish);
        assert.equal(t.usage.completion_tokens, alone[i].usage.completion_tokens);
        assert.equal(t.usage.prompt_tokens, alone[i].usage.prompt_tokens);
      }
    });

    test('the log: one row per request, route local/local, the engine\'s counts, cost 0', async () => {
      const res = await gw.stop();
      stopped = true;
      assert.equal(res.code, 0, 'tiergate exits cleanly on SIGTERM');
      const rows = gw.rows("endpoint <> 'GET /healthz' ORDER BY id");
      assert.equal(refusedBySurface.length, 1);
      const byId = new Map(rows.map((r) => [r.request_id, r]));
      assert.equal(byId.size, rows.length, 'one row per request id');
      assert.equal(rows.length, rec.seen.length, 'one row per request the SDKs sent');
      for (const s of rec.seen) {
        const r = byId.get(s.id);
        assert.ok(r, `a row for ${s.method} ${s.path} (${s.id})`);
        assert.equal(r.endpoint, `${s.method} ${s.path}`);
        assert.equal(r.http_status, s.status);
        assert.equal(r.route, s.route, 'the route in the header is the logged one');
        if (refusedBySurface.includes(s.id)) {
          assert.equal(r.route, null);
          assert.equal(r.http_status, 400);
        } else if (s.method === 'POST') {
          assert.equal(r.route, 'local/local', `${s.path} answered locally`);
          assert.equal(r.provider, 'local');
          assert.equal(r.model, 'local');
          if (r.http_status === 200) {
            assert.equal(r.cost_pusd, 0, 'price 0');
            assert.equal(r.error_class, null);
          } else {
            assert.equal(r.http_status, 400);
            assert.equal(r.cost_pusd, null, 'no usage, no cost');
            assert.equal(r.error_message, s.error, 'the logged error is the one the client got');
            assert.equal(r.error_class, /maximum context length/.test(s.error) ? 'context_length' : 'bad_request');
          }
        }
      }
      const r = byId.get(ref.id);
      assert.equal(r.client_api, 'openai');
      assert.equal(r.streamed, 0);
      assert.equal(r.input_tokens, ref.usage.prompt_tokens);
      assert.equal(r.cached_tokens, ref.usage.prompt_tokens_details.cached_tokens);
      assert.equal(r.output_tokens, ref.usage.completion_tokens);
      // baseline gpt-4o: $2.50 input, $1.25 cached input, $10 output per 1M tokens
      assert.equal(r.baseline_cost_pusd, (r.input_tokens - r.cached_tokens) * 2500000 + r.cached_tokens * 1250000 + r.output_tokens * 10000000);
      assert.ok(r.prefill_ms >= 0 && r.queue_ms >= 0);
      assert.ok(r.decode_tps > 0);
      assert.equal(rows.filter((x) => x.http_status === 400).length, rec.seen.filter((x) => x.status === 400).length);
    });
  });
}

// ------------------------------------------------------------------ at capacity: the fallback

describe('local model at capacity (1 slot, no queue)', () => {
  let mock, gw, rec, openai, anthropic;
  let stopped = false;

  before(async () => {
    mock = await startMock();
    gw = await startGateway(mock, {
      configPath: EXAMPLE,
      env: localEnv(mock, 'stories260K.gguf', { TIERGATE_LOCAL_SLOTS: 1, TIERGATE_LOCAL_QUEUE: 0 }),
    });
    rec = recorder();
    ({ openai, anthropic } = clients(gw, rec));
  });

  after(async () => {
    if (!stopped) await gw?.stop();
    await mock?.stop();
    gw?.cleanup();
  });

  const activeSequences = () => metric(gw, rec, 'tiergate_local_active_sequences');

  test('while a long local stream runs, the next request is answered by the upstream fallback; a disconnect frees the slot', async () => {
    const ac = new AbortController();
    const { data: long, response } = await openai.chat.completions
      .create(
        { model: 'local', messages: oaMessages, stream: true, max_tokens: 1500, ignore_eos: true, temperature: 0 },
        { signal: ac.signal },
      )
      .withResponse();
    assert.equal(response.headers.get('x-tiergate-route'), 'local/local');
    const it = long[Symbol.asyncIterator]();
    let got = '';
    while (!got) got = (await it.next()).value.choices[0]?.delta?.content ?? '';
    assert.equal(await activeSequences(), 1);

    const { data: c, response: r2 } = await openai.chat.completions
      .create({ model: 'local', messages: [{ role: 'user', content: 'say hello world' }] })
      .withResponse();
    assert.equal(r2.headers.get('x-tiergate-route'), 'openai/gpt-4o-mini');
    assert.equal(c.choices[0].message.content, 'say hello world say hello world say hello'); // the mock's answer
    const up = await mock.last();
    assert.equal(up.body.model, 'gpt-4o-mini');
    assert.equal(up.headers.authorization, `Bearer ${TEST_KEY}`);
    assert.deepEqual(up.body.messages, [{ role: 'user', content: 'say hello world' }]);

    const { data: m, response: r3 } = await anthropic.messages
      .create({ model: 'local', max_tokens: 100, messages: [{ role: 'user', content: 'say hello world' }] })
      .withResponse();
    assert.equal(r3.headers.get('x-tiergate-route'), 'openai/gpt-4o-mini');
    assert.equal(m.content[0].text, 'say hello world say hello world say hello');
    assert.equal(m.usage.output_tokens, 8);

    // the client hangs up: its slot is free well before the 1500 tokens are done
    const t0 = Date.now();
    ac.abort();
    let active = 1;
    while (active && Date.now() - t0 < 5000) {
      active = await activeSequences();
      if (active) await sleep(5);
    }
    assert.equal(active, 0, 'the disconnected stream left its slot');
    const { data: again, response: r4 } = await openai.chat.completions
      .create({ model: 'local', messages: oaMessages, max_tokens: 4, temperature: 0 })
      .withResponse();
    assert.equal(r4.headers.get('x-tiergate-route'), 'local/local');
    assert.equal(again.usage.completion_tokens, 4);

    const res = await gw.stop();
    stopped = true;
    assert.equal(res.code, 0);
    const rows = gw.rows("endpoint LIKE 'POST %' ORDER BY id");
    const ids = rec.seen.filter((s) => s.method === 'POST').map((s) => s.id);
    assert.deepEqual(rows.map((x) => x.request_id).sort(), [...ids].sort(), 'one row per request');
    const row = (id) => rows.find((x) => x.request_id === id);
    const longRow = row(response.headers.get('x-tiergate-request-id'));
    assert.equal(longRow.route, 'local/local');
    assert.equal(longRow.streamed, 1);
    assert.equal(longRow.http_status, 499);
    assert.equal(longRow.error_class, 'client_disconnect');
    for (const r of [r2, r3]) {
      const fb = row(r.headers.get('x-tiergate-request-id'));
      assert.equal(fb.route, 'openai/gpt-4o-mini');
      assert.equal(fb.model, 'local');
      assert.equal(fb.upstream_model, 'gpt-4o-mini');
      assert.equal(fb.http_status, 200);
      assert.equal(fb.attempts, 2, 'the local attempt, then the fallback');
    }
    assert.equal(row(r4.headers.get('x-tiergate-request-id')).route, 'local/local');
  });
});
