/**
 * Builds the editor code: type-checks editor/ (editor/tsconfig.json, lib dom) and bundles each
 * entry into resources/ as one IIFE for the browsers Node-RED's editor supports. The bundles
 * carry what they import from nodes/lib/contract.ts, so the word lists and routes the server owns
 * exist in one copy. Run by `npm run build` after `tsc -p .`.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** resources/<file> ← editor/<entry> */
const ENTRIES = {
  'client-registry-sidebar.js': 'editor/sidebar/index.ts',
  'client-registry-editor.js': 'editor/node-editor.ts'
};

execFileSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(ROOT, 'editor')], { stdio: 'inherit' });

await Promise.all(
  Object.entries(ENTRIES).map(([out, entry]) =>
    esbuild.build({
      entryPoints: [path.join(ROOT, entry)],
      outfile: path.join(ROOT, 'resources', out),
      bundle: true,
      format: 'iife',
      target: 'es2019',
      platform: 'browser',
      charset: 'utf8',
      legalComments: 'none',
      banner: { js: `/* node-red-contrib-client-registry: built from ${entry} by scripts/build-editor.mjs; do not edit */` },
      logLevel: 'warning'
    })
  )
);
