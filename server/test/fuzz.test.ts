// Property-based fuzzing of every route in the OpenAPI document with random and hostile input:
// no 5xx, no crash, and no container created outside the rules.
import { mkdir, symlink } from 'node:fs/promises'
import { join } from 'node:path'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { parseContainerName } from '../sessions/naming.ts'
import { forbiddenReason, isInside } from '../sessions/workspace-check.ts'
import { buildTestApp } from './helpers.ts'

const HOSTILE = [
  '',
  '/',
  '.',
  '..',
  '../..',
  '/etc',
  '/etc/passwd',
  '/root',
  '/proc/self',
  '~',
  '~/.ssh',
  '--force',
  '-rf',
  '$(id)',
  '`id`',
  "'; rm -rf / #",
  'a\u0000b',
  '%2e%2e%2f',
  '\u202e\u0041',
  'x'.repeat(5000),
  'clincus-12345678-1',
  'clincus-00000000-11',
  '🙂',
  'null',
  'true',
  '{}',
]

async function withTimeout<T>(what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`${what} did not answer within 10 s`))
    }, 10_000)
  })
  try {
    return await Promise.race([p, timeout])
  } finally {
    clearTimeout(timer)
  }
}

describe('fuzzing the API', () => {
  it('survives 2,000 random and hostile requests across every route', async () => {
    const t = await buildTestApp()
    await mkdir(join(t.root, 'other', '.git'), { recursive: true })
    await symlink('/etc', join(t.root, 'etc-link'))
    const doc = (await t.app.inject({ url: '/api/openapi.json' })).json<{
      paths: Record<string, Record<string, unknown>>
    }>()
    const routes = Object.entries(doc.paths).flatMap(([path, methods]) =>
      // the SSE stream never ends by design; it has its own tests
      (path === '/api/events' ? [] : Object.keys(methods)).map((m) => ({
        path,
        method: m.toUpperCase() as 'GET' | 'POST' | 'PUT' | 'DELETE',
      })),
    )
    expect(routes.length).toBeGreaterThanOrEqual(12)

    const str = fc.oneof(
      fc.constantFrom(...HOSTILE),
      fc.string({ maxLength: 64 }),
      fc.constantFrom(t.project, join(t.root, 'other'), join(t.root, 'etc-link'), t.root, t.home),
    )
    const value = fc.oneof(
      str,
      fc.integer({ min: -5, max: 70000 }),
      fc.boolean(),
      fc.constant(null),
      fc.array(str, { maxLength: 3 }),
      fc.dictionary(fc.string({ maxLength: 8 }), str, { maxKeys: 3 }),
    )
    const validLaunch = fc.record(
      {
        workspace: fc.constantFrom(t.project, join(t.root, 'other')),
        tool: fc.constantFrom('claude', 'copilot', 'opencode'),
      },
      { requiredKeys: ['workspace'] },
    )
    const body = fc.oneof(
      { weight: 4, arbitrary: validLaunch },
      fc.record(
        {
          workspace: str,
          tool: fc.option(fc.constantFrom('claude', 'copilot', 'opencode', 'aider', ''), {
            nil: undefined,
          }),
          persistent: fc.option(fc.boolean(), { nil: undefined }),
          profile: fc.option(str, { nil: undefined }),
        },
        { requiredKeys: [] },
      ),
      fc.record({ path: str }, { requiredKeys: [] }),
      fc.record({ root: str, name: str }, { requiredKeys: [] }),
      fc.record(
        {
          port: fc.option(value, { nil: undefined }),
          workspace_roots: fc.option(value, { nil: undefined }),
        },
        { requiredKeys: [] },
      ),
      fc.dictionary(fc.string({ maxLength: 10 }), value, { maxKeys: 4 }),
      value,
    )
    const contentType = fc.constantFrom(
      'application/json',
      'application/json',
      'application/json',
      'text/plain',
      'application/x-www-form-urlencoded',
      undefined,
    )
    const query = fc.dictionary(
      fc.constantFrom('force', 'limit', 'offset', 'path', 'x'),
      fc.oneof(str, fc.constantFrom('true', 'false', '-1', '1e9', '0', '50')),
      { maxKeys: 3 },
    )

    let requests = 0
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...routes),
        str,
        body,
        contentType,
        query,
        fc.boolean(),
        async (route, id, payload, ct, q, raw) => {
          const path = route.path.replace('{id}', encodeURIComponent(id))
          const qs = new URLSearchParams(q).toString()
          const headers: Record<string, string> = ct ? { 'content-type': ct } : {}
          const hasBody = route.method !== 'GET'
          const res = await withTimeout(
            `${route.method} ${path}`,
            t.app.inject({
              method: route.method,
              url: qs ? `${path}?${qs}` : path,
              headers,
              ...(hasBody
                ? {
                    payload: raw
                      ? JSON.stringify({ v: payload }).slice(0, -2)
                      : JSON.stringify(payload),
                  }
                : {}),
            }),
          )
          requests++
          if (res.statusCode >= 500)
            throw new Error(`${route.method} ${path}?${qs} → ${res.statusCode} ${res.body}`)
          if (
            String(res.headers['content-type']).includes('application/json') &&
            res.statusCode >= 400
          ) {
            const err = res.json<{ error?: unknown; code?: unknown }>()
            expect(typeof err.error).toBe('string')
            expect(typeof err.code).toBe('string')
            expect(String(err.error)).not.toMatch(/\n\s+at /) // never a stack trace
          }
        },
      ),
      { numRuns: 2000, seed: 20261123 },
    )
    expect(requests).toBe(2000)

    // Some launches went through, and only allowed workspaces ever reached incus.
    expect(t.driver.callsOf('init').length).toBeGreaterThan(0)
    for (const call of t.driver.callsOf('init')) {
      const [, name, config] = call.args as [string, string, Record<string, string>]
      expect(parseContainerName('clincus-', name)).not.toBeNull()
      const ws = config['user.clincus.workspace'] ?? ''
      // roots may have been changed by the fuzzer itself; the rules that always hold:
      expect(forbiddenReason(ws, t.home), ws).toBeNull()
      expect(isInside(ws, t.home), ws).toBe(true)
    }
  }, 120_000)
})
