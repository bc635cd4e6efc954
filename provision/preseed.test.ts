import { describe, expect, it } from 'vitest'
import { planPreseed, renderPreseed } from './preseed.ts'

const emptyDefault = { name: 'default', devices: {} }

describe('planPreseed', () => {
  it('creates a dir pool and a root disk on a fresh daemon', () => {
    const doc = planPreseed({ pools: [], defaultProfile: emptyDefault })
    expect(doc).toEqual({
      storage_pools: [{ name: 'default', driver: 'dir', description: '', config: {} }],
      profiles: [
        { name: 'default', devices: { root: { type: 'disk', path: '/', pool: 'default' } } },
      ],
    })
  })

  it('leaves an initialised installation alone', () => {
    const profile = {
      name: 'default',
      devices: {
        root: { type: 'disk', path: '/', pool: 'fast' },
        eth0: { type: 'nic', network: 'incusbr0', name: 'eth0' },
      },
    }
    expect(planPreseed({ pools: [{ name: 'fast', driver: 'zfs' }], defaultProfile: profile })).toBe(
      undefined,
    )
  })

  it('reuses an existing pool (preferring "default") instead of creating one', () => {
    const pools = [
      { name: 'other', driver: 'btrfs' },
      { name: 'default', driver: 'zfs' },
    ]
    expect(planPreseed({ pools, defaultProfile: emptyDefault })).toEqual({
      profiles: [
        { name: 'default', devices: { root: { type: 'disk', path: '/', pool: 'default' } } },
      ],
    })
    expect(
      planPreseed({ pools: [{ name: 'only', driver: 'dir' }], defaultProfile: emptyDefault })
        ?.profiles?.[0]?.devices.root?.pool,
    ).toBe('only')
  })

  it('does not overwrite an unrelated device that happens to be called root', () => {
    const profile = {
      name: 'default',
      devices: { root: { type: 'disk', source: '/srv', path: '/srv' } },
    }
    const doc = planPreseed({ pools: [], defaultProfile: profile })
    expect(doc?.profiles?.[0]?.devices).toEqual({
      'clincus-root': { type: 'disk', path: '/', pool: 'default' },
    })
  })

  it('recreates the default profile when it is missing', () => {
    expect(planPreseed({ pools: [], defaultProfile: undefined })?.profiles?.[0]?.name).toBe(
      'default',
    )
  })
})

describe('renderPreseed', () => {
  it('renders JSON (valid YAML) with no network section', () => {
    const doc = planPreseed({ pools: [], defaultProfile: emptyDefault })
    expect(doc).toBeDefined()
    const text = renderPreseed(doc ?? {})
    expect(JSON.parse(text)).toEqual(doc)
    expect(text).not.toMatch(/network/)
    expect(text.endsWith('\n')).toBe(true)
  })
})
