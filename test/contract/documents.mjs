// The machine-readable contract, checked by the tools of its ecosystems:
//
//   node test/contract/documents.mjs
//
// - docs/asyncapi.yaml parses with @asyncapi/parser (which runs Spectral's AsyncAPI rule set) with
//   no error and no warning beyond the accepted ones in contract.mjs;
// - docs/openapi.yaml validates with @readme/openapi-parser (OpenAPI 3.1 schema and semantics);
// - every example in either document is valid against its own schema, every message and every
//   response with a body has one, and each schema rejects payloads the protocol refuses.
// Whether the examples are what the real server sends and accepts is server.mjs's job.
// Exit status: 0 valid, 1 not, 77 the npm packages are missing (CTest's skip code).

import test from 'node:test';
import assert from 'node:assert/strict';
import { loadAsyncApi, loadOpenApi, makeAjv, plainSchema } from './contract.mjs';

const asyncapi = await loadAsyncApi();
const openapi = await loadOpenApi();

test('asyncapi.yaml: @asyncapi/parser finds no error and no unaccepted warning', () => {
  for (const line of asyncapi.accepted) console.log(`  accepted: ${line}`);
  assert.deepEqual(asyncapi.problems, []);
  assert.ok(asyncapi.document, 'the document was parsed');
});

test('asyncapi.yaml: every message has examples, each valid against its payload schema', async () => {
  const ajv = await makeAjv('draft-07');
  const messages = asyncapi.document.allMessages().all();
  assert.deepEqual(messages.map((m) => m.name()).sort(),
    ['connect', 'disconnect', 'error', 'initial', 'ping', 'subscribe', 'subscribe_confirmation',
      'unsubscribe', 'wisdom_distribution']);
  for (const message of messages) {
    const schema = plainSchema(message.payload().json());
    assert.equal(schema.properties?.type?.const, message.name(), `${message.name()}: "type" is its name`);
    const validate = ajv.compile(schema);
    const examples = message.examples().all();
    assert.ok(examples.length > 0, `${message.name()} has an example`);
    for (const example of examples)
      assert.ok(validate(example.payload()),
        `${message.name()}/${example.name()}: ${JSON.stringify(validate.errors)}`);
  }
});

test('asyncapi.yaml: the schemas refuse what the protocol refuses', async () => {
  const ajv = await makeAjv('draft-07');
  const byName = Object.fromEntries(asyncapi.document.allMessages().all()
    .map((m) => [m.name(), ajv.compile(plainSchema(m.payload().json()))]));
  const refused = [
    ['subscribe', { type: 'subscribe', payload: { id: 'x', since: { epoch: 'e', offset: -1 } } }],
    ['subscribe', { type: 'subscribe', payload: { id: 'x', since: { offset: 1 } } }],
    ['subscribe', { type: 'subscribe', payload: { id: 5 } }],
    ['error', { type: 'error', payload: { code: 'nope', message: 'x' } }],
    ['subscribe_confirmation', { type: 'subscribe_confirmation', payload: { status: 'ok', recovered: true } }],
    ['initial', { type: 'initial', payload: { id: 'ABC', epoch: '', offset: 0 } }],
    ['wisdom_distribution', { type: 'wisdom_distribution', payload: { offset: 1 } }],
    ['ping', { type: 'ping', payload: {} }],
  ];
  for (const [name, value] of refused)
    assert.equal(byName[name](value), false, `${name} accepts ${JSON.stringify(value)}`);
});

test('asyncapi.yaml: both WebSocket paths list the same close codes', () => {
  const channels = asyncapi.document.channels().all();
  assert.deepEqual(channels.map((c) => c.address()).sort(), ['/', '/ws']);
  const codes = channels.map((c) => c.json()['x-close-codes'].map((e) => `${e.code} ${e.reason}`));
  assert.ok(codes[0].length >= 10, 'every close of protocol.md section 8');
  assert.deepEqual(codes[0], codes[1]);
});

test('openapi.yaml: @readme/openapi-parser validates it', () => {
  assert.deepEqual(openapi.problems, []);
});

function* mediaExamples(api) {
  for (const [route, item] of Object.entries(api.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!['get', 'head', 'post', 'put', 'delete', 'patch'].includes(method)) continue;
      if (op.requestBody)
        for (const [type, media] of Object.entries(op.requestBody.content))
          yield { where: `${method.toUpperCase()} ${route} request ${type}`, media };
      for (const [status, response] of Object.entries(op.responses))
        for (const [type, media] of Object.entries(response.content ?? {}))
          yield { where: `${method.toUpperCase()} ${route} ${status} ${type}`, media };
    }
  }
}

test('openapi.yaml: every request and response body has an example valid against its schema', async () => {
  const ajv = await makeAjv('2020-12');
  let checked = 0;
  for (const { where, media } of mediaExamples(openapi.api)) {
    assert.ok(media.schema, `${where} has a schema`);
    const examples = 'example' in media ? [['', media.example]]
      : Object.entries(media.examples ?? {}).map(([name, e]) => [`#${name}`, e.value]);
    assert.ok(examples.length > 0, `${where} has an example`);
    const validate = ajv.compile(media.schema);
    for (const [name, value] of examples) {
      assert.ok(validate(value), `${where}${name}: ${JSON.stringify(validate.errors)}`);
      checked++;
    }
  }
  assert.ok(checked >= 30, `${checked} examples`);
});

test('openapi.yaml: the schemas refuse what the server never sends', async () => {
  const ajv = await makeAjv('2020-12');
  const schemas = openapi.api.components.schemas;
  const refused = [
    ['Health', { status: 'ok', connections: 0, subscribers: 0, broker: 'redis', broker_connected: true, leader: true }],
    ['Health', { status: 'ok', connections: 0, subscribers: 0, broker: 'memory', broker_connected: false, leader: true }],
    ['NotReady', { status: 'ready' }],
    ['PublishRequest', { message: '' }],
    ['StatusText', '404 Not Found'],
    ['ApiError', { message: 'x' }],
  ];
  for (const [name, value] of refused)
    assert.equal(ajv.compile(schemas[name])(value), false, `${name} accepts ${JSON.stringify(value)}`);
});
