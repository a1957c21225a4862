import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { EVENT_TYPES } from '../src/index.js';
import { OUTPUT, SCHEMA, schemaDigest } from '../scripts/gen-types.mjs';

const types = readFileSync(OUTPUT, 'utf8');
const schema = readFileSync(SCHEMA, 'utf8');

test('src/events.d.ts was generated from the committed docs/events.schema.json (else: `make types`)', () => {
  const recorded = /^\/\/ schema sha256: ([0-9a-f]{64})$/m.exec(types);
  assert.ok(recorded, 'src/events.d.ts has no schema digest: regenerate it with `make types`');
  assert.equal(recorded[1], schemaDigest(schema), 'src/events.d.ts is stale: run `make types`');
});

test('the generated types are open: every interface takes fields it does not know, a reason any string', () => {
  const interfaces = [...types.matchAll(/^export interface (\w+) \{\n([\s\S]*?)^\}/gm)];
  assert.ok(interfaces.length >= 9);
  for (const [, name, body] of interfaces) assert.match(body, /\[k: string\]: unknown;/, name);
  assert.match(types, /export type Reason =[^;]*\| \(string & \{\}\);/);
});

test('the client listens for every event type of the schema', () => {
  const consts = JSON.parse(schema).$defs;
  const named = Object.values(consts).map((d) => d.properties && d.properties.type && d.properties.type.const)
    .filter((t) => t && t !== 'heartbeat');
  for (const t of named) assert.ok(EVENT_TYPES.includes(t), `${t} is missing from EVENT_TYPES`);
});
