// Issue 16 scope 3 on the live daemon: the create answers when the tool's tmux pane exists and
// has produced output. The tool here is the test image's fake agent behind a script that stays
// silent for a few seconds first (`[tool] binary`, a script in the workspace).
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import {
  describeIncus,
  execArgvAsCode,
  requestJson,
  startLiveServer,
  type LiveServer,
} from '../test/incus-harness.ts'
import { ownByUser } from '../test/owner.ts'
import { waitUntil } from '../test/ws-client.ts'

/** How long the tool prints nothing (ms). */
const SILENT_MS = 4000

let server: LiveServer
let home: string

describeIncus("the create waits for the tool's first output", () => {
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'clincus-it-'))
    const root = join(home, 'projects')
    server = await startLiveServer({
      home,
      configText: `[defaults]\nimage = "${process.env.CLINCUS_IT_IMAGE ?? 'clincus-test'}"\n\n[dashboard]\nworkspace_roots = ["${root}"]\n\n[tool]\nbinary = "/workspace/slow-tool"\n`,
    })
  })

  afterAll(async () => {
    await server.close()
    await rm(home, { recursive: true, force: true })
  }, 120_000)

  it('answers only after the pane shows the tool, which then takes keys', async () => {
    const dir = await server.project('slow')
    // Silent, then the image's fake agent (`claude`) with the flags it was given.
    await writeFile(
      join(dir, 'slow-tool'),
      `#!/bin/bash\nsleep ${String(SILENT_MS / 1000)}\nexec claude "$@"\n`,
    )
    await chmod(join(dir, 'slow-tool'), 0o755)
    await ownByUser(dir)
    const started = Date.now()
    const res = await requestJson(server.url, 'POST', '/api/sessions', { workspace: dir })
    const elapsed = Date.now() - started
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    const body = res.body as { id: string; timings?: Record<string, number> }
    // At the moment of the answer the pane already shows the agent.
    const pane = await execArgvAsCode(body.id, [
      'tmux',
      'capture-pane',
      '-p',
      '-t',
      `=clincus-${body.id}:`,
    ])
    expect(pane.stdout).toContain('clincus fake tool (claude) ready')
    expect(elapsed).toBeGreaterThanOrEqual(SILENT_MS)
    if (body.timings?.tool !== undefined)
      expect(body.timings.tool).toBeGreaterThanOrEqual(SILENT_MS)
    // and it takes keys
    await execArgvAsCode(body.id, [
      'tmux',
      'send-keys',
      '-t',
      `=clincus-${body.id}:`,
      'hello',
      'Enter',
    ])
    const screen = await waitUntil(
      'the agent answers hello',
      async () => {
        const p = await execArgvAsCode(body.id, [
          'tmux',
          'capture-pane',
          '-p',
          '-t',
          `=clincus-${body.id}:`,
        ])
        return p.stdout.includes('hello-BACK') && p.stdout
      },
      { timeoutMs: 30_000 },
    )
    expect(screen).toContain('hello-BACK')
  }, 180_000)
})
