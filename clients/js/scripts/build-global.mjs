// monitor/dagcast-client.js from src/ (`make client`): the same code as a classic script that
// defines window.Dagcast, for pages that load plain scripts (the monitor, examples/webapp: no
// build step, and a page opened from a file:// URL cannot load ES modules). Each module's imports
// are dropped and its `export` keywords removed; the modules share one scope, so their top-level
// names must not clash (the build fails if they do). test/global.test.js fails when the committed
// file is not what this writes.
//
//   node scripts/build-global.mjs          rewrite monitor/dagcast-client.js
//   node scripts/build-global.mjs --check  exit 1 when it is stale
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const SRC = join(HERE, '..', 'src');
export const OUTPUT = join(HERE, '..', '..', '..', 'monitor', 'dagcast-client.js');
const MODULES = ['events.js', 'fold.js', 'sse.js', 'watch.js']; // in dependency order (not react.js)
const DECLARATION = /^(?:export )?(?:async )?(?:const|let|function|class) ([A-Za-z_$][\w$]*)/;

export function build() {
  const names = [];
  const seen = new Set();
  const parts = MODULES.map((file) => {
    const lines = readFileSync(join(SRC, file), 'utf8').split('\n');
    const body = [];
    for (const line of lines) {
      if (/^import /.test(line)) continue;
      const declared = DECLARATION.exec(line);
      if (declared) {
        if (seen.has(declared[1])) throw new Error(`${file}: ${declared[1]} is declared by another module too`);
        seen.add(declared[1]);
        if (line.startsWith('export ')) names.push(declared[1]);
      }
      body.push(line.replace(/^export /, ''));
    }
    return `// ---- src/${file}\n${body.join('\n').trimEnd()}`;
  });
  return [
    '// Generated from clients/js/src by clients/js/scripts/build-global.mjs (`make client`): do not edit.',
    '// @dagcast/client as a classic script: window.Dagcast = {watchExecution, fold, …} (clients/js/README.md).',
    '(function () {',
    "'use strict';",
    ...parts,
    `window.Dagcast = Object.freeze({ ${names.join(', ')} });`,
    '})();',
    '',
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = build();
  if (process.argv.includes('--check')) {
    const same = readFileSync(OUTPUT, 'utf8') === out;
    console.log(same ? 'monitor/dagcast-client.js is current' : 'monitor/dagcast-client.js is stale: run `make client`');
    process.exit(same ? 0 : 1);
  }
  writeFileSync(OUTPUT, out);
  console.log(`wrote ${OUTPUT}`);
}
