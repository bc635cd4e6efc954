// Issue 13 acceptance, live: inside a session, as the code user, the developer toolchain works
// (python3, a C compiler, rg, jq, curl), and the session reports its tool version (null on the
// test image, which records none). Runs on the shared test image (or CLINCUS_IT_TOOLCHAIN_IMAGE).
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import {
  describeIncus,
  execAsCode,
  type LiveServer,
  requestJson,
  startLiveServer,
  TEST_IMAGE,
} from '../server/test/incus-harness.ts'

const IMAGE = process.env.CLINCUS_IT_TOOLCHAIN_IMAGE ?? TEST_IMAGE

let server: LiveServer
let home: string

describeIncus('the developer toolchain in a session (issue 13)', () => {
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'clincus-tc-it-'))
    server = await startLiveServer({
      home,
      configText: `[defaults]\nimage = "${IMAGE}"\n\n[dashboard]\nworkspace_roots = ["${join(home, 'projects')}"]\n`,
    })
  })

  afterAll(async () => {
    await server.close()
    await rm(home, { recursive: true, force: true })
  })

  it('python3, cc, rg, jq and curl work as the code user; tool_version is reported', async () => {
    const ws = await server.project('tc')
    const res = await requestJson(server.url, 'POST', '/api/sessions', { workspace: ws })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    const session = res.body as { id: string; tool_version?: string | null }
    expect(session.tool_version).toBeNull()

    expect((await execAsCode(session.id, "python3 -c 'print(1)'")).stdout).toBe('1')
    const hello = await execAsCode(
      session.id,
      'printf \'#include <stdio.h>\\nint main(void){puts("hello");return 0;}\\n\' > /tmp/h.c && cc -o /tmp/h /tmp/h.c && /tmp/h',
    )
    expect(hello.stdout).toBe('hello')
    expect((await execAsCode(session.id, 'id -un && id -u')).stdout).toBe('code\n1000')
    expect((await execAsCode(session.id, 'printf "a\\nneedle\\n" | rg needle')).stdout).toBe(
      'needle',
    )
    expect((await execAsCode(session.id, 'echo \'{"a":[1,2]}\' | jq -c .a')).stdout).toBe('[1,2]')
    expect((await execAsCode(session.id, 'curl --version')).stdout).toMatch(/^curl \d+\.\d+/)
    expect(
      (await execAsCode(session.id, 'python3 -m venv /tmp/v && /tmp/v/bin/pip --version')).stdout,
    ).toMatch(/^pip /)
    expect((await execAsCode(session.id, 'locale -a')).stdout).toMatch(/en_US\.utf8/)

    const listed = await requestJson(server.url, 'GET', '/api/sessions')
    const mine = (listed.body as Array<{ id: string; tool_version?: string | null }>).find(
      (s) => s.id === session.id,
    )
    expect(mine?.tool_version).toBeNull()
  }, 180_000)
})
