/**
 * What ships: `npm pack --dry-run` lists exactly the runtime files, and what the Flow Library
 * scorecard parses (literal registerType calls, examples as arrays covering every flow node).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const NODE_TYPES = Object.keys(pkg['node-red'].nodes);

describe('the package', function () {
  this.timeout(60000);

  it('ships exactly the runtime .js, .html, locales, icons, resources and examples', function () {
    const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const files: string[] = JSON.parse(out)[0].files.map((f: { path: string }) => f.path);
    const allowed = [
      /^package\.json$/,
      /^README\.md$/,
      /^LICENSE$/,
      /^CHANGELOG\.md$/,
      /^nodes\/(lib(\/[a-z-]+)*|registry-[a-z]+)\/[a-z-]+\.(js|html)$/,
      /^nodes\/registry-[a-z]+\/locales\/(en-US|de)\/registry-[a-z]+\.(json|html)$/,
      /^nodes\/registry-[a-z]+\/icons\/client-registry-[a-z-]+\.svg$/,
      /^resources\/client-registry-[a-z-]+\.(js|css)$/,
      /^examples\/[A-Za-z0-9 .-]+\.json$/,
      /^bin\/client-registry\.js$/
    ];
    for (const f of files) assert.ok(allowed.some((re) => re.test(f)), `unexpected file in the package: ${f}`);
    assert.ok(!files.some((f) => f.endsWith('.ts') || f.endsWith('.map') || f.startsWith('test/')));
    for (const [type, entry] of Object.entries(pkg['node-red'].nodes as Record<string, string>)) {
      for (const needed of [entry, entry.replace(/\.js$/, '.html'), `nodes/${type}/locales/en-US/${type}.json`, `nodes/${type}/locales/en-US/${type}.html`, `nodes/${type}/locales/de/${type}.json`, `nodes/${type}/locales/de/${type}.html`]) {
        assert.ok(files.includes(needed), `${needed} is shipped`);
      }
    }
    assert.ok(files.includes('nodes/lib/password-worker.js'), 'the password worker is shipped');
  });

  it('registers every type with a literal registerType the scorecard can parse', function () {
    for (const [type, entry] of Object.entries(pkg['node-red'].nodes as Record<string, string>)) {
      const html = fs.readFileSync(path.join(ROOT, entry.replace(/\.js$/, '.html')), 'utf8');
      assert.match(html, new RegExp(`RED\\.nodes\\.registerType\\(\\s*['"]${type}['"]\\s*,\\s*\\{`), `${type} editor`);
      assert.match(html, new RegExp(`data-template-name="${type}"`));
      const help = fs.readFileSync(path.join(ROOT, `nodes/${type}/locales/en-US/${type}.html`), 'utf8');
      assert.match(help, new RegExp(`data-help-name="${type}"`));
    }
  });

  it('has examples that are arrays of nodes, with a comment each, covering every flow node', function () {
    const dir = path.join(ROOT, 'examples');
    const used = new Set<string>();
    for (const file of fs.readdirSync(dir)) {
      const flow = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
      assert.ok(Array.isArray(flow), `${file} is an array`);
      assert.ok(flow.some((n: { type: string }) => n.type === 'comment'), `${file} explains itself in a comment node`);
      assert.ok(!flow.some((n: { credentials?: unknown }) => n.credentials), `${file} carries no credentials`);
      flow.forEach((n: { type: string }) => used.add(n.type));
    }
    for (const type of NODE_TYPES) assert.ok(used.has(type), `an example uses ${type}`);
  });

  it('declares what the Flow Library expects', function () {
    assert.equal(pkg.license, 'Apache-2.0');
    assert.ok(pkg.repository?.url);
    assert.ok(pkg.keywords.includes('node-red'));
    assert.ok(!('node-red' in (pkg.dependencies ?? {})), 'node-red is a devDependency only');
    assert.ok(Object.keys(pkg.dependencies).length <= 6, 'at most 6 dependencies');
    assert.ok(pkg['node-red'].version);
    assert.ok(pkg.engines.node);
  });
});
