import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The node .html files' editor scripts: each <script type="text/javascript"> block is linted as
 * a script of its own (line numbers map back to the .html); templates and help are not code.
 */
const SCRIPT_BLOCK = /(<script\s+type="text\/javascript"\s*>)([\s\S]*?)<\/script>/g;
const htmlScripts = {
  meta: { name: 'client-registry/html-scripts' },
  preprocess(text) {
    const blocks = [];
    for (const m of text.matchAll(SCRIPT_BLOCK)) {
      const start = m.index + m[1].length;
      const before = text.slice(0, start);
      const line = before.split('\n').length - 1;
      const column = start - (before.lastIndexOf('\n') + 1);
      blocks.push({ text: m[2], filename: `${blocks.length}.js`, line, column });
    }
    htmlScripts.offsets = blocks.map((b) => ({ line: b.line, column: b.column }));
    return blocks.map(({ text, filename }) => ({ text, filename }));
  },
  postprocess(messages) {
    const offsets = htmlScripts.offsets ?? [];
    return messages.flatMap((list, i) =>
      list.map((m) => {
        const o = offsets[i] ?? { line: 0, column: 0 };
        const shift = (line, column) => (line === 1 ? column + o.column : column);
        return { ...m, line: m.line + o.line, column: shift(m.line, m.column), endLine: m.endLine && m.endLine + o.line, endColumn: m.endLine && shift(m.endLine, m.endColumn) };
      })
    );
  },
  supportsAutofix: false
};

/** What Node-RED's editor page offers a node's .html script. */
const editorGlobals = Object.fromEntries(
  ['RED', '$', 'jQuery', 'window', 'document', 'console', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date', 'JSON', 'ClientRegistryEditor', 'navigator', 'location', 'URL', 'Blob'].map((g) => [g, 'readonly'])
);

export default tseslint.config(
  {
    ignores: ['node_modules/**', '**/*.js', '!**/*.html/*.js', '**/*.js.map', '.ci/**', 'test-output/**', '.nr-user/**', 'resources/**']
  },
  {
    files: ['nodes/**/*.html'],
    plugins: { 'client-registry': { processors: { 'html-scripts': htmlScripts } } },
    processor: 'client-registry/html-scripts'
  },
  {
    files: ['nodes/**/*.html/*.js'],
    ...js.configs.recommended,
    languageOptions: { ecmaVersion: 2019, sourceType: 'script', globals: editorGlobals },
    rules: {
      ...js.configs.recommended.rules,
      'no-unused-vars': ['error', { args: 'none' }],
      strict: 'off'
    }
  },
  {
    files: ['**/*.ts'],
    extends: [js.configs.recommended, ...tseslint.configs.recommended],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
      // `const node = this` is Node-RED's idiom for node constructors
      '@typescript-eslint/no-this-alias': 'off'
    }
  },
  {
    files: ['**/*.mjs'],
    ...js.configs.recommended,
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } }
  },
  {
    files: ['editor/**/*.ts'],
    languageOptions: { globals: { RED: 'readonly', $: 'readonly', window: 'readonly' } }
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-expressions': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      // `import x = require(...)` is how TypeScript imports the nodes' `export =` functions
      '@typescript-eslint/no-require-imports': 'off'
    }
  }
);
