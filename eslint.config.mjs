import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: ['node_modules/**', '**/*.js', '**/*.js.map', '.ci/**', 'test-output/**', '.nr-user/**']
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
      // `const node = this` is Node-RED's idiom for node constructors
      '@typescript-eslint/no-this-alias': 'off'
    }
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
