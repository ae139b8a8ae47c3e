import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Tests import packages by name; these aliases point them at the sources, so no build is needed.
const source = (pkg: string) => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url));

export default defineConfig({
  resolve: {
    alias: {
      '@onceonly/core': source('core'),
      '@onceonly/redis': source('redis'),
      '@onceonly/bullmq': source('bullmq'),
      '@onceonly/kafka': source('kafka'),
      '@onceonly/postgres': source('postgres'),
      '@onceonly/cli': source('cli'),
      '@onceonly/otel': source('otel'),
    },
  },
  test: {
    reporters: ['default', './test/support/summary-reporter.ts'],
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['packages/*/test/**/*.test.ts'] },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          globalSetup: ['./test/support/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
