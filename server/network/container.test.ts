// The session's one proxy device (issue 16) and how an instance gets to it from whatever it has:
// a new session, one made before issue 16 (the egress and hook devices, hooks sending to 3130),
// one made before issue 17 (the egress device alone), a moved runtime directory.
import { describe, expect, it } from 'vitest'
import { devicePlan, SESSION_DEVICE, sessionDevice } from './container.ts'

const SOCK = '/run/clincus/egress/clincus-0123abcd-1.sock'
const old = (listen: string, path: string): Record<string, string> => ({
  type: 'proxy',
  listen: `tcp:${listen}`,
  connect: `unix:${path}`,
  bind: 'instance',
})

describe('the session device', () => {
  it('listens on 127.0.0.1:3128 only for a new session, also on 3130 for an old one', () => {
    expect(sessionDevice(SOCK, false)).toEqual({
      type: 'proxy',
      listen: 'tcp:127.0.0.1:3128',
      connect: `unix:${SOCK}`,
      bind: 'instance',
    })
    expect(sessionDevice(SOCK, true).listen).toBe('tcp:127.0.0.1:3128,3130')
  })

  it('a new session: add it; a right one: nothing to do', () => {
    expect(devicePlan(SOCK, {})).toEqual({ remove: [], add: sessionDevice(SOCK, false) })
    expect(devicePlan(SOCK, undefined)).toEqual({ remove: [], add: sessionDevice(SOCK, false) })
    const right = { [SESSION_DEVICE]: sessionDevice(SOCK, false), root: { type: 'disk' } }
    expect(devicePlan(SOCK, right)).toEqual({ remove: [], add: null })
  })

  it('made before issue 16: both old devices go, the one device keeps a listener on 3130', () => {
    const devices = {
      'clincus-egress': old('127.0.0.1:3128', SOCK),
      'clincus-agent': old('127.0.0.1:3130', '/run/clincus/agent/clincus-0123abcd-1.sock'),
      workspace: { type: 'disk', source: '/w', path: '/workspace' },
    }
    const plan = devicePlan(SOCK, devices)
    expect(plan).toEqual({
      remove: ['clincus-egress', 'clincus-agent'],
      add: sessionDevice(SOCK, true),
    })
    // Once replaced it stays as it is: the listener on 3130 is kept on later resumes.
    expect(devicePlan(SOCK, { [SESSION_DEVICE]: sessionDevice(SOCK, true) })).toEqual({
      remove: [],
      add: null,
    })
  })

  it('made before issue 17 (no hooks): the egress device goes, no listener on 3130', () => {
    expect(devicePlan(SOCK, { 'clincus-egress': old('127.0.0.1:3128', SOCK) })).toEqual({
      remove: ['clincus-egress'],
      add: sessionDevice(SOCK, false),
    })
  })

  it('a device to another socket (the runtime directory moved) or listening elsewhere is replaced', () => {
    for (const wrong of [
      sessionDevice('/elsewhere/x.sock', false),
      old('0.0.0.0:3128', SOCK),
      { ...sessionDevice(SOCK, false), bind: 'host' },
    ])
      expect(devicePlan(SOCK, { [SESSION_DEVICE]: wrong })).toEqual({
        remove: [SESSION_DEVICE],
        add: sessionDevice(SOCK, false),
      })
    const moved = { [SESSION_DEVICE]: sessionDevice('/elsewhere/x.sock', true) }
    expect(devicePlan(SOCK, moved)).toEqual({
      remove: [SESSION_DEVICE],
      add: sessionDevice(SOCK, true),
    })
  })
})
