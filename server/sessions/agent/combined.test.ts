// Issue 17, "100 % with hooks": the recorded Claude hook sequences replayed through the hook parser,
// with the screen's cross-check on a quiet screen. Claude fires no hook when Esc interrupts a turn
// or refuses a permission (fixtures/README.md), so the hooks alone leave the status at `working`
// or `waiting` there; the silence alert's look at the screen then corrects it to what the recorded
// frames of that moment show.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { AgentStatusName } from '../../../shared/schemas/sessions.ts'
import { parseHookPayload, signalOf } from './hooks.ts'
import { screenSignal } from './screen-watch.ts'

const DIR = join(import.meta.dirname, 'fixtures')
interface Frame {
  file: string
  tool: string
  scenario: string
  size: string
  note: string
  expect: { status: AgentStatusName; reasonIncludes?: string }
}
interface HookFile {
  file: string
  scenario: string
  size: string
  phases: Array<{ lines: number; status: AgentStatusName }>
}
const manifest = JSON.parse(readFileSync(join(DIR, 'manifest.json'), 'utf8')) as {
  frames: Frame[]
  hooks: HookFile[]
}
const pane = (f: Frame) => ({
  toolRunning: f.expect.status !== 'exited',
  dead: false,
  title: '',
  screen: readFileSync(join(DIR, f.file), 'utf8'),
})

describe('hooks with the screen cross-check, on the recorded Claude sessions', () => {
  const claude = manifest.frames.filter((f) => f.tool === 'claude')

  it('a quiet screen corrects the hooks to what it shows; a busy one defers to them', () => {
    const wrong: string[] = []
    for (const f of claude) {
      for (const hookSays of ['working', 'waiting', 'idle'] as const) {
        const sig = screenSignal('claude', pane(f), true)
        // With hooks, the screen never claims `working` (the hooks say that sooner), and what it
        // does say is the frame's status.
        const after = sig?.status ?? hookSays
        const want = f.expect.status === 'working' ? hookSays : f.expect.status
        if (after !== want) wrong.push(`${f.file} (${f.note}): hooks ${hookSays} → ${after}`)
      }
    }
    expect(wrong).toEqual([])
  })

  it('replaying every hook file, each phase ends in its recorded status (100 %)', () => {
    let phases = 0
    const wrong: string[] = []
    for (const h of manifest.hooks) {
      const lines = readFileSync(join(DIR, h.file), 'utf8').trim().split('\n')
      const frames = claude.filter((f) => f.scenario === h.scenario && f.size === h.size)
      for (const phase of h.phases) {
        phases++
        let status: AgentStatusName | null = null
        for (const line of lines.slice(0, phase.lines)) {
          const payload = parseHookPayload(
            JSON.stringify((JSON.parse(line) as { payload: unknown }).payload),
          )
          const sig = payload ? signalOf(payload) : null
          if (sig) status = sig.status
        }
        if (status === phase.status) continue
        // The hooks missed it (an Esc): the quiet screen of that moment is one of the recorded
        // frames in that status, and the cross-check reads it.
        const quiet = frames.find((f) => f.expect.status === phase.status)
        const sig = quiet ? screenSignal('claude', pane(quiet), true) : null
        if (sig?.status !== phase.status)
          wrong.push(`${h.file} after ${phase.lines} lines: ${status} → ${sig?.status ?? status}`)
      }
    }
    expect(phases).toBeGreaterThan(20)
    expect(wrong).toEqual([])
  })
})
