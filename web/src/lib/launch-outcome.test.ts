import { describe, expect, it } from 'vitest'
import { formatDuration, launchOutcome, launchSteps } from './launch-outcome.svelte.ts'

describe('launch outcome', () => {
  it('parses the launch fields of a create answer, and refuses what does not fit them', () => {
    expect(launchOutcome({ id: 'a', path: 'warm', timings: { claim: 3 } }, 420)).toEqual({
      id: 'a',
      path: 'warm',
      totalMs: 420,
      timings: { claim: 3 },
    })
    expect(
      launchOutcome({ id: 'a', path: 'cold', timings: {}, cold_reason: 'pool empty' }, 1),
    ).toMatchObject({ coldReason: 'pool empty' })
    expect(
      launchOutcome({ id: 'a', path: 'warm', warm: 'primed', timings: { thaw: 3 } }, 1),
    ).toMatchObject({ path: 'warm', warm: 'primed' })
    // `[pool] prestart`: the agent started ahead, handed over or started again (why).
    expect(
      launchOutcome(
        { id: 'a', path: 'warm', warm: 'primed', agent_start: 'prestarted', timings: {} },
        1,
      ),
    ).toMatchObject({ agentStart: 'prestarted' })
    expect(
      launchOutcome(
        {
          id: 'a',
          path: 'warm',
          warm: 'primed',
          agent_start: 'restarted',
          agent_start_reason: 'CLAUDE.md changed',
          timings: {},
        },
        1,
      ),
    ).toMatchObject({ agentStart: 'restarted', agentStartReason: 'CLAUDE.md changed' })
    expect(
      launchOutcome({ id: 'a', path: 'warm', agent_start: 'later', timings: {} }, 1),
    ).toBeNull()
    expect(launchOutcome({ id: 'a', path: 'warm', warm: 'hot', timings: {} }, 1)).toBeNull()
    expect(launchOutcome({ id: 'a' }, 1)).toBeNull()
    expect(launchOutcome({ id: 'a', path: 'hot', timings: {} }, 1)).toBeNull()
    expect(launchOutcome({ id: 'a', path: 'cold', timings: { init: -1 } }, 1)).toBeNull()
    expect(launchOutcome({ id: 'a', path: 'cold', timings: {}, cold_reason: 7 }, 1)).toBeNull()
  })

  it('orders steps as a creation runs them, unknown ones after, by their id', () => {
    expect(launchSteps({ unfrozen: 5, tool: 30, init: 10 })).toEqual([
      { id: 'init', label: 'Creating the container', ms: 10 },
      { id: 'tool', label: 'Starting the tool in tmux', ms: 30 },
      { id: 'unfrozen', label: 'unfrozen', ms: 5 },
    ])
    // A primed launch (issue 16).
    expect(
      launchSteps({ tool: 30, 'tool-config': 9, verify: 4, thaw: 5 }).map((s) => s.id),
    ).toEqual(['thaw', 'verify', 'tool-config', 'tool'])
    expect(launchSteps({ agent: 90, verify: 4, thaw: 5 }).map((s) => s.id)).toEqual([
      'thaw',
      'verify',
      'agent',
    ])
    expect(launchSteps({ tool: 30, workspace: 8, claim: 2 }).map((s) => s.id)).toEqual([
      'claim',
      'workspace',
      'tool',
    ])
  })

  it('formats durations in ms below a second, in seconds above', () => {
    expect(formatDuration(640.4)).toBe('640 ms')
    expect(formatDuration(1240)).toBe('1.24 s')
    expect(formatDuration(12_400)).toBe('12.4 s')
  })
})
