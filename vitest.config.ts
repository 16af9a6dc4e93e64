import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['**/*.case.test.ts', 'node_modules/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Tests that spawn `pemba` run the compiled bin/pemba.js: build dist/ once, up front.
    globalSetup: ['test/helpers/build-dist.ts'],
  },
})
