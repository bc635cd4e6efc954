import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { FakeIncusDriver } from '../incus/fake-driver.ts'
import { copyToolConfig } from './tool-config.ts'
import { TOOL_SPECS } from './tools.ts'

let home: string

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'clincus-toolcfg-'))
  await mkdir(join(home, '.claude', 'plugins', 'p'), { recursive: true })
  for (let i = 0; i < 20; i++)
    await writeFile(join(home, '.claude', 'plugins', 'p', `f${i}`), `${i}`)
})

afterEach(async () => {
  await rm(home, { recursive: true, force: true })
})

function setup(): FakeIncusDriver {
  const driver = new FakeIncusDriver()
  driver.addInstance('c1')
  return driver
}

const ctx = (driver: FakeIncusDriver): Parameters<typeof copyToolConfig>[1] => ({
  driver,
  name: 'c1',
  hostHome: home,
  containerHome: '/home/code',
  uid: 1000,
  effortLevel: '',
})

describe('copyToolConfig pushes', () => {
  it('overlaps the pushes (a few at a time) and pushes every file once', async () => {
    const driver = setup()
    let inFlight = 0
    let peak = 0
    driver.gate = async (method) => {
      if (method !== 'filePush') return
      inFlight++
      peak = Math.max(peak, inFlight)
      await new Promise((r) => setTimeout(r, 5))
      inFlight--
    }
    const pushed = await copyToolConfig(TOOL_SPECS.claude, ctx(driver))
    // 20 plugin files + settings.json + .claude.json
    expect(pushed).toBe(22)
    const dests = driver.callsOf('filePush').map((c) => c.args[1])
    expect(new Set(dests).size).toBe(22)
    expect(peak).toBeGreaterThan(1)
    expect(peak).toBeLessThanOrEqual(6)
    // The directories exist before the first push.
    expect(driver.calls.findIndex((c) => c.method === 'exec')).toBeLessThan(
      driver.calls.findIndex((c) => c.method === 'filePush'),
    )
  })

  it('fails with the first error, after the pushes in flight settled, and starts no more', async () => {
    const driver = setup()
    driver.failOn('filePush', 'Error: disk full', { match: (a) => String(a[1]).endsWith('/f3') })
    let inFlight = 0
    driver.gate = async (method) => {
      if (method !== 'filePush') return
      inFlight++
      await new Promise((r) => setTimeout(r, 5))
      inFlight--
    }
    await expect(copyToolConfig(TOOL_SPECS.claude, ctx(driver))).rejects.toThrow('disk full')
    expect(inFlight).toBe(0)
    expect(driver.callsOf('filePush').length).toBeLessThan(22)
  })
})
