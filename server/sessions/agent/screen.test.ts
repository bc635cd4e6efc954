// The screen fallback against the replay corpus (issue 17): every frame recorded from the real
// agents of the `clincus` image (scripts/record-agents/, fixtures/manifest.json) is classified,
// and at least 99 % must come out as labelled when they were recorded. The wide frames (132x40)
// were held out while the rules were written; their score is reported on its own. Then the
// classifier is attacked as the hostile input it reads: huge screens, pathological lines, junk.
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { TOOLS, type ToolName } from '../../../shared/tools.ts'
import { classifyScreen, MAX_REASON_CHARS, type ScreenVerdict } from './screen.ts'

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures')

interface Frame {
  file: string
  tool: ToolName
  scenario: string
  size: string
  heldOut: boolean
  note: string
  title: string
  expect: { status: string; reasonIncludes?: string }
}

const manifest = JSON.parse(readFileSync(join(FIXTURES, 'manifest.json'), 'utf8')) as {
  frames: Frame[]
  hooks: { file: string; phases: { lines: number; status: string }[] }[]
}

function right(frame: Frame, got: ScreenVerdict | null): boolean {
  if (got?.status !== frame.expect.status) return false
  const want = frame.expect.reasonIncludes
  return want === undefined || (got.reason ?? '').includes(want)
}

interface Score {
  right: number
  total: number
}
const pct = (s: Score) => (s.total === 0 ? 'n/a' : `${((100 * s.right) / s.total).toFixed(1)} %`)

describe('classifyScreen on the recorded corpus', () => {
  const results = manifest.frames.map((frame) => {
    const screen = readFileSync(join(FIXTURES, frame.file), 'utf8')
    const got = classifyScreen({ tool: frame.tool, screen, title: frame.title })
    return { frame, got, ok: right(frame, got) }
  })

  it('holds frames of every tool, in every status, at both sizes', () => {
    for (const tool of TOOLS) {
      const frames = manifest.frames.filter((f) => f.tool === tool)
      expect(new Set(frames.map((f) => f.size)).size, tool).toBe(2)
      const statuses = new Set(frames.map((f) => f.expect.status))
      for (const status of ['working', 'waiting', 'idle', 'exited'])
        expect(statuses.has(status), `${tool} ${status}`).toBe(true)
    }
  })

  it('classifies at least 99 % of the frames right (per tool and held-out figures printed)', () => {
    const score = (pick: (r: (typeof results)[number]) => boolean): Score => {
      const rs = results.filter(pick)
      return { right: rs.filter((r) => r.ok).length, total: rs.length }
    }
    const rows = TOOLS.map((tool) => {
      const all = score((r) => r.frame.tool === tool)
      const held = score((r) => r.frame.tool === tool && r.frame.heldOut)
      return `  ${tool.padEnd(9)} ${String(all.right).padStart(4)}/${String(all.total).padEnd(4)} ${pct(all).padStart(8)}   held out ${held.right}/${held.total} ${pct(held)}`
    })
    const overall = score(() => true)
    const heldOut = score((r) => r.frame.heldOut)
    const wrong = results
      .filter((r) => !r.ok)
      .map(
        (r) =>
          `  WRONG ${r.frame.file} (${r.frame.note}): expected ${JSON.stringify(r.frame.expect)}, got ${JSON.stringify(r.got)}`,
      )
    // eslint-disable-next-line no-console -- the per-tool figures are part of the test's report
    console.log(
      [
        'screen fallback on the recorded corpus:',
        ...rows,
        `  overall   ${overall.right}/${overall.total} ${pct(overall)}   held out ${heldOut.right}/${heldOut.total} ${pct(heldOut)}`,
        ...wrong,
      ].join('\n'),
    )
    expect(overall.total).toBeGreaterThan(0)
    expect(overall.right / overall.total, wrong.join('\n')).toBeGreaterThanOrEqual(0.99)
  })

  it('gives every waiting verdict a reason of at most 200 characters', () => {
    for (const r of results) {
      if (r.got?.status !== 'waiting') continue
      expect(r.got.reason, r.frame.file).toBeTruthy()
      expect((r.got.reason ?? '').length, r.frame.file).toBeLessThanOrEqual(MAX_REASON_CHARS)
    }
  })
})

describe("Claude's recorded hook sequences", () => {
  it('hold one {t, event, payload} line per hook, and phases within the file', () => {
    expect(manifest.hooks.length).toBeGreaterThan(0)
    for (const h of manifest.hooks) {
      const lines = readFileSync(join(FIXTURES, h.file), 'utf8').trimEnd().split('\n')
      for (const line of lines) {
        const e = JSON.parse(line) as { t: number; event: string; payload: Record<string, unknown> }
        expect(typeof e.t, h.file).toBe('number')
        expect(e.payload.hook_event_name, h.file).toBe(e.event)
      }
      expect(lines[0], h.file).toContain('"SessionStart"')
      for (const p of h.phases) expect(p.lines, h.file).toBeLessThanOrEqual(lines.length)
    }
  })
})

describe('classifyScreen on hostile screens', () => {
  const rule = '─'.repeat(80)
  // Each input is built to make a backtracking pattern explode, or to be big.
  const attacks: Record<string, string> = {
    'a 1 MiB screen of text': `${'x'.repeat(1023)}\n`.repeat(1024),
    'one 1 MiB line': 'y'.repeat(1024 * 1024),
    'a 1 MiB line of spaces then a character': `${' '.repeat(1024 * 1024)}z`,
    'a 1 MiB line of box edges': `${'│ '.repeat(512 * 1024)}a`,
    'a shell-prompt-like line': `code@host:${'/'.repeat(1024 * 1024)}`,
    'an exit-like line': `[${'a'.repeat(1024 * 1024)} exited with code 0`,
    'question marks': `${'? ('.repeat(300_000)}\n`,
    'cursor lines under rules': `${rule}\n❯ ${'1. '.repeat(200_000)}\n`.repeat(4),
    'many short lines': '❯\n'.repeat(500_000),
    'many rules': `${rule}\n`.repeat(13_000),
    'hints everywhere': `${'Esc to cancel · ↑/↓ to navigate · '.repeat(30_000)}\n`,
  }

  for (const [name, screen] of Object.entries(attacks)) {
    it(`classifies ${name} in bounded time for every tool`, () => {
      for (const tool of TOOLS) {
        const started = process.hrtime.bigint()
        const got = classifyScreen({ tool, screen, title: screen.slice(0, 4096) })
        const ms = Number(process.hrtime.bigint() - started) / 1e6
        // Linear work on ≤ 64 KiB takes a few ms; a backtracking blow-up takes seconds or more.
        // The bound is loose for a loaded CI machine.
        expect(ms, `${tool}: ${ms.toFixed(1)} ms`).toBeLessThan(1000)
        if (got?.reason !== undefined)
          expect(got.reason.length).toBeLessThanOrEqual(MAX_REASON_CHARS)
      }
    })
  }

  it('never throws and keeps the verdict shape on arbitrary screens', () => {
    const piece = fc.constantFrom(
      '❯ ',
      '│ ',
      rule,
      '?',
      ' (Esc)',
      '\n',
      'esc to interrupt',
      'Do you want to proceed?',
      '1. Yes',
      '[claude exited with code 0]',
      'code@h:/w$ ',
      'Build · m',
      '\u0000',
      '\ud800',
    )
    const screenArb = fc.oneof(
      fc.string(),
      fc.array(piece, { maxLength: 60 }).map((a) => a.join('')),
    )
    fc.assert(
      fc.property(fc.constantFrom(...TOOLS), screenArb, fc.string(), (tool, screen, title) => {
        const got = classifyScreen({ tool, screen, title })
        if (got === null) return true
        expect(['working', 'waiting', 'idle', 'exited']).toContain(got.status)
        if (got.reason !== undefined)
          expect(got.reason.length).toBeLessThanOrEqual(MAX_REASON_CHARS)
        return true
      }),
      { numRuns: 500 },
    )
  })

  it('answers null for an unknown tool or a screen that is not text', () => {
    const bad = { tool: 'vim' as ToolName, screen: '❯ 1. Yes\nDo you want?', title: '' }
    expect(classifyScreen(bad)).toBeNull()
    expect(
      classifyScreen({ tool: 'claude', screen: 42 as unknown as string, title: '' }),
    ).toBeNull()
    expect(classifyScreen({ tool: 'claude', screen: '', title: '' })).toBeNull()
  })
})

describe('the reason read from a hostile screen', () => {
  // The pane read is the container's output (a root agent can replace tmux): the reason that
  // reaches the session cache, the logs and every browser must be printable text, as the hook
  // channel's reasons are (hooks.ts trimReason).
  it('holds no control characters or bidirectional overrides', () => {
    const question =
      'Run \u001b]8;;https://evil.example\u0007this\u0000\u0008 \u202eexe.lam\u2066 command?'
    const screen = [question, '❯ 1. Yes', '  2. No', 'Esc to cancel'].join('\n')
    for (const tool of ['claude', 'copilot'] as const) {
      const got = classifyScreen({ tool, screen, title: '' })
      expect(got?.status, tool).toBe('waiting')
      expect(got?.reason, tool).toContain('command?')
      expect(got?.reason, tool).not.toMatch(
        // eslint-disable-next-line no-control-regex -- control characters are what is checked
        /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/,
      )
    }
  })
})
