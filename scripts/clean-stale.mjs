// Removes compiled files whose TypeScript source is gone (a module moved into a folder, a spec
// renamed). tsc never deletes: a stale nodes/lib/x.js would shadow nodes/lib/x/index.js and
// run old code. Only .js/.js.map files beside where a .ts would be are touched.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const KEEP = [path.join(root, 'test', 'fixtures')];

function walk(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules' && !KEEP.includes(full)) walk(full);
      continue;
    }
    const m = /^(.*)\.js(\.map)?$/.exec(entry.name);
    if (!m) continue;
    const source = path.join(dir, m[1] + '.ts');
    // a .js with no map is hand-written (nodes' compiled output always has a map)
    const compiled = m[2] ? true : fs.existsSync(full + '.map');
    if (compiled && !fs.existsSync(source)) fs.rmSync(full);
  }
}

for (const dir of ['nodes', 'test', 'editor']) {
  if (fs.existsSync(path.join(root, dir))) walk(path.join(root, dir));
}
