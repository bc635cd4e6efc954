// Issue 10 row 13: a user-supplied key must never find something on Object.prototype.
import { describe, expect, it } from 'vitest'
import { writeFile } from 'node:fs/promises'
import { buildTestApp, json, tempDir } from '../test/helpers.ts'
import { applyProfile, loadConfig } from './load.ts'
import { mergeInto } from './merge.ts'
import { configLocations } from './paths.ts'

const INHERITED = [
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  'valueOf',
  'isPrototypeOf',
  '__defineGetter__',
  'propertyIsEnumerable',
  'toLocaleString',
]

describe('profile lookups use own properties only', () => {
  it.each(INHERITED)('POST /api/sessions with profile %j is 400 unknown_profile', async (name) => {
    const t = await buildTestApp()
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/sessions',
      ...json({ workspace: t.project, profile: name }),
    })
    expect(res.statusCode).toBe(400)
    expect(res.json<{ code: string }>().code).toBe('unknown_profile')
    expect(t.driver.callsOf('init')).toHaveLength(0)
  })

  it('applyProfile finds no inherited name, and a profile really named "constructor" works', async () => {
    const home = await tempDir()
    const env = { CLINCUS_SYSTEM_CONFIG: `${home}/none.toml`, CLINCUS_CONFIG: `${home}/c.toml` }
    await writeFile(`${home}/c.toml`, '[profiles.constructor]\npersistent = true\n')
    const { config } = await loadConfig(configLocations(env, home), env, home)
    for (const name of INHERITED.filter((n) => n !== 'constructor'))
      expect(applyProfile(config, name)).toBeNull()
    expect(applyProfile(config, 'constructor')?.defaults.persistent).toBe(true)
  })

  it('a "__proto__" table in a TOML layer is an own key, never the prototype', () => {
    const layer = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}') as Record<string, unknown>
    const out = mergeInto({}, layer)
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype)
    expect(Object.hasOwn(out, '__proto__')).toBe(true)
    expect((out as { polluted?: unknown }).polluted).toBeUndefined()
  })
})
