// waitReady (issue 16): the daemon's view (Running, an init pid) answers without an exec; only a
// driver with no view of the init process is probed with `exec true`.
import { describe, expect, it } from 'vitest'
import type { CallOptions } from '../incus/driver.ts'
import { FakeIncusDriver } from '../incus/fake-driver.ts'
import { waitReady } from './readiness.ts'

/** A fake whose init process is visible (what the REST and CLI drivers report). */
class HostViewFake extends FakeIncusDriver {
  override async containerRoot(name: string, opts?: CallOptions): Promise<string | null> {
    await super.containerRoot(name, opts)
    return '/proc/4242/root'
  }
}

describe('waitReady', () => {
  it('answers from the instance state without an exec when the driver sees the init process', async () => {
    const driver = new HostViewFake()
    driver.addInstance('c1')
    await waitReady(driver, 'c1', new AbortController().signal, 5000)
    expect(driver.callsOf('exec')).toHaveLength(0)
    expect(driver.callsOf('containerRoot')).toHaveLength(1)
  })

  it('waits while the instance is not running yet, then answers', async () => {
    const driver = new HostViewFake()
    const inst = driver.addInstance('c1', { status: 'Stopped' })
    let polls = 0
    driver.gate = async (method) => {
      if (method === 'getInstance' && ++polls === 3) inst.status = 'Running'
    }
    await waitReady(driver, 'c1', new AbortController().signal, 10_000)
    expect(polls).toBe(3)
    expect(driver.callsOf('exec')).toHaveLength(0)
  })

  it('probes with exec true when the driver has no view of the init process', async () => {
    const driver = new FakeIncusDriver()
    driver.addInstance('c1')
    await waitReady(driver, 'c1', new AbortController().signal, 5000)
    expect(driver.callsOf('exec').map((c) => c.args[1])).toEqual([['true']])
  })

  it('fails with 504 container_not_ready and the last reason at the deadline', async () => {
    const driver = new HostViewFake()
    driver.addInstance('c1', { status: 'Frozen' })
    await expect(waitReady(driver, 'c1', new AbortController().signal, 200)).rejects.toMatchObject({
      status: 504,
      code: 'container_not_ready',
      message: expect.stringContaining('the instance is Frozen') as unknown,
    })
  })
})
