import { svelte } from '@sveltejs/vite-plugin-svelte'
import { defineConfig } from 'vitest/config'

const server = `http://127.0.0.1:${process.env.CLINCUS_DEV_PORT ?? '3000'}`

export default defineConfig({
  root: 'web',
  plugins: [svelte()],
  build: { outDir: '../dist/web', emptyOutDir: true, assetsDir: 'assets', sourcemap: true },
  server: {
    proxy: {
      '/api': server,
      '/ws': { target: server.replace('http', 'ws'), ws: true },
    },
  },
  test: {
    root: '.',
    projects: [
      {
        extends: true,
        test: {
          name: 'server',
          environment: 'node',
          // Unit tests assert no durations; the limit only catches a hang. Most files build the
          // whole app, which takes 2–5 s at load 12 on the 2-core CI machines (vitest's 5 s
          // default failed tests that were merely slow there).
          testTimeout: 30_000,
          include: [
            'server/**/*.test.ts',
            'images/**/*.test.ts',
            'incus/**/*.test.ts',
            'provision/**/*.test.ts',
            'shared/**/*.test.ts',
            'scripts/**/*.test.ts',
          ],
          exclude: ['**/*.incus.test.ts', 'node_modules/**'],
        },
      },
      {
        extends: true,
        test: {
          name: 'incus',
          environment: 'node',
          include: ['server/**/*.incus.test.ts', 'images/**/*.incus.test.ts'],
          testTimeout: 180_000,
          hookTimeout: 300_000,
          fileParallelism: false,
        },
      },
      {
        extends: true,
        resolve: { conditions: ['browser'] },
        test: {
          name: 'web',
          environment: 'happy-dom',
          testTimeout: 30_000,
          include: ['web/src/**/*.test.ts', 'web/e2e/fidelity/**/*.test.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'e2e',
          environment: 'node',
          include: ['web/e2e/**/*.e2e.test.ts'],
          testTimeout: 180_000,
          hookTimeout: 300_000,
          fileParallelism: false,
        },
      },
    ],
  },
})
