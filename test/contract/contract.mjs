// What both contract suites share: loading and validating docs/asyncapi.yaml and docs/openapi.yaml
// with their ecosystems' own parsers, JSON Schema validators for the schemas in them, and the rule
// by which a real message "matches" a documented example.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const DOCS = path.resolve(HERE, '../../docs');
export const ASYNCAPI_FILE = path.join(DOCS, 'asyncapi.yaml');
export const OPENAPI_FILE = path.join(DOCS, 'openapi.yaml');
export const SKIP = 77; // CTest's SKIP_RETURN_CODE: a prerequisite is missing, never a pass

/** The npm packages, resolved from this directory; exits 77 naming the install command if missing. */
export async function loadPackages(names) {
  const require = createRequire(path.join(HERE, 'package.json'));
  const loaded = {};
  for (const name of names) {
    let resolved;
    try {
      resolved = require.resolve(name);
    } catch {
      console.log(`contract: SKIP: ${name} is not installed in ${HERE} (install it with: npm ci --prefix test/contract)`);
      process.exit(SKIP);
    }
    loaded[name] = await import(pathToFileURL(resolved).href);
  }
  return loaded;
}

/**
 * AsyncAPI diagnostics accepted as they are, each with the reason. Any other warning or error fails.
 * Spectral's rule set for AsyncAPI 2 is what `@asyncapi/parser` runs.
 */
export const ACCEPTED_ASYNCAPI_DIAGNOSTICS = {
  'asyncapi-latest-version':
    'AsyncAPI 2.6 is the version the issue allows and the one code generators support most widely.',
  'asyncapi-info-contact': 'the project has no public contact address yet.',
  'asyncapi-info-license': 'the project has no license yet (see the Debian package\'s copyright file).',
  'asyncapi2-message-messageId':
    'the same messages serve the channels /ws and /; a messageId would then be reported as not unique (an error).',
};

const SEVERITY = ['error', 'warning', 'info', 'hint'];

/** Parses docs/asyncapi.yaml; returns the document and the diagnostics that are not accepted. */
export async function loadAsyncApi() {
  const { '@asyncapi/parser': mod } = await loadPackages(['@asyncapi/parser']);
  const Parser = mod.Parser ?? mod.default?.Parser;
  const text = readFileSync(ASYNCAPI_FILE, 'utf8');
  const { document, diagnostics } = await new Parser().parse(text, { source: ASYNCAPI_FILE });
  const problems = [];
  const accepted = [];
  for (const d of diagnostics) {
    const line = `${SEVERITY[d.severity]} ${d.code} at ${d.path.join('.') || '(root)'}: ${d.message}`;
    if (d.severity <= 1 && !(d.code in ACCEPTED_ASYNCAPI_DIAGNOSTICS)) problems.push(line);
    else accepted.push(line);
  }
  return { document, problems, accepted };
}

/** Validates docs/openapi.yaml; returns the dereferenced document and what the validator said. */
export async function loadOpenApi() {
  const { '@readme/openapi-parser': mod } = await loadPackages(['@readme/openapi-parser']);
  const parser = mod.default ?? mod;
  const problems = [];
  try {
    await parser.validate(OPENAPI_FILE);
  } catch (e) {
    problems.push(String(e.message ?? e));
  }
  const api = await parser.dereference(OPENAPI_FILE);
  return { api, problems };
}

/** An Ajv instance for AsyncAPI 2 schemas (draft-07) or OpenAPI 3.1 schemas (2020-12), with formats. */
export async function makeAjv(draft) {
  const pkgs = await loadPackages(['ajv', 'ajv/dist/2020.js', 'ajv-formats']);
  const Ajv = draft === '2020-12' ? pkgs['ajv/dist/2020.js'].default : pkgs.ajv.default;
  const ajv = new Ajv({ strict: false, allErrors: true });
  pkgs['ajv-formats'].default(ajv);
  return ajv;
}

/** A schema without the parser's own `x-parser-*` annotations. */
export function plainSchema(schema) {
  return JSON.parse(JSON.stringify(schema, (k, v) => (k.startsWith('x-parser-') ? undefined : v)));
}

function kind(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

/**
 * Where `actual` differs in shape from `example`: a different JSON type, or a different set of
 * members in an object, at any depth. Values themselves are not compared (ids, quotes and counts
 * differ from run to run); `fixed` lists the dotted paths whose values must be equal too.
 */
export function differences(actual, example, fixed = [], where = '') {
  const out = [];
  const here = where || '(top)';
  if (kind(actual) !== kind(example)) {
    out.push(`${here}: ${kind(actual)} where the example has ${kind(example)}`);
    return out;
  }
  if (fixed.includes(where) && JSON.stringify(actual) !== JSON.stringify(example))
    out.push(`${here}: ${JSON.stringify(actual)} where the example has ${JSON.stringify(example)}`);
  if (kind(actual) === 'object') {
    const a = Object.keys(actual).sort();
    const e = Object.keys(example).sort();
    for (const k of e) if (!a.includes(k)) out.push(`${here}: no member "${k}" (the example has it)`);
    for (const k of a) if (!e.includes(k)) out.push(`${here}: member "${k}" that the example does not have`);
    for (const k of e)
      if (a.includes(k)) out.push(...differences(actual[k], example[k], fixed, where ? `${where}.${k}` : k));
  }
  return out;
}
