// File names in ~/.claude/plugins come from whatever marketplaces and plugins the user installed
// (third-party git clones): a name the tar archive cannot carry safely (a backslash, a newline, a
// path longer than ustar holds) must cost that one file, not every session launch.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { FakeIncusDriver } from '../incus/fake-driver.ts'
import { copyToolConfig, planToolConfig, toTarEntries } from './tool-config.ts'
import { packTar } from './tar.ts'
import { TOOL_SPECS } from './tools.ts'

let home: string

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'clincus-toolcfg-names-'))
})

afterEach(async () => {
  await rm(home, { recursive: true, force: true })
})

async function put(rel: string, content: string): Promise<void> {
  await mkdir(join(home, rel, '..'), { recursive: true })
  await writeFile(join(home, rel), content)
}

describe('tool config copy with hostile file names', () => {
  it('skips files whose names no archive entry can carry and copies the rest', async () => {
    await put('.claude/.credentials.json', '{"claudeAiOauth":{"accessToken":"the-login"}}')
    await put('.claude/plugins/good/plugin.json', '{}')
    await put('.claude/plugins/evil/back\\slash.md', 'x')
    await put('.claude/plugins/evil/new\nline.md', 'x')
    await put(`.claude/plugins/evil/${'n'.repeat(200)}.md`, 'x')
    await put(
      `.claude/plugins/deep/${Array.from({ length: 12 }, () => 'd'.repeat(30)).join('/')}/f.md`,
      'x',
    )

    const planned = await planToolConfig(TOOL_SPECS.claude, {
      hostHome: home,
      containerHome: '/home/code',
      effortLevel: '',
    })
    const paths = planned.map((f) => f.path)
    expect(paths).toContain('.claude/plugins/good/plugin.json')
    expect(paths).toContain('.claude/.credentials.json')
    expect(paths.some((p) => p.includes('evil') || p.includes('deep'))).toBe(false)
    expect(() => packTar(toTarEntries(planned), 1000)).not.toThrow()

    const driver = new FakeIncusDriver()
    driver.addInstance('c1')
    await expect(
      copyToolConfig(TOOL_SPECS.claude, {
        driver,
        name: 'c1',
        hostHome: home,
        containerHome: '/home/code',
        uid: 1000,
        effortLevel: '',
      }),
    ).resolves.toBe(planned.length)
  })
})
