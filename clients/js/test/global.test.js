import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import vm from 'node:vm';
import * as client from '../src/index.js';
import { OUTPUT, build } from '../scripts/build-global.mjs';
import { recorded } from './helpers.js';

test('monitor/dagcast-client.js is the build of src/ (run `make client` after changing src/)', () => {
  assert.equal(readFileSync(OUTPUT, 'utf8'), build(), 'monitor/dagcast-client.js is stale: run `make client`');
});

test('the classic script defines window.Dagcast with the package\'s exports, which work the same', () => {
  const window = {};
  vm.runInNewContext(readFileSync(OUTPUT, 'utf8'), { window, URL, setTimeout, clearTimeout, AbortController });
  assert.deepEqual(Object.keys(window.Dagcast).sort(), Object.keys(client).sort());
  const events = recorded('failed', 'live');
  const mine = events.reduce(client.fold, client.initialState());
  const theirs = events.reduce(window.Dagcast.fold, window.Dagcast.initialState());
  assert.deepEqual(JSON.parse(JSON.stringify(theirs)), JSON.parse(JSON.stringify(mine)));
});
