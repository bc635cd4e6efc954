// Records the replay corpus of the screen fallback (issue 17): the three real agents of the
// `clincus` image, driven through every state against a scripted model API (mock-model.mjs) that
// runs inside the container on 127.0.0.1, so nothing needs a network. Run by hand, never by
// `npm test` (it needs the live Incus daemon and the real image, and takes ~20 minutes):
//
//   npx tsx scripts/record-agents/record.ts [--image clincus] [--only claude/main,opencode]
//                                           [--sizes 80x24,132x40] [--out DIR]
//
// For each size it creates one container from the image (no network interface, on the `clincus`
// pool when it exists), and for each scenario (scenarios.ts) writes the tool's config into the
// code user's home, starts the tool in tmux exactly as clincus does (startToolCommand: the same
// argv, wrapper and tmux options), resizes the window, drives it with `tmux send-keys` and saves
// each captured frame (`capture-pane -p` text, `#{pane_title}`, the label from the scenario) under
// server/sessions/agent/fixtures/<tool>/, plus Claude's hook events (hooks-<scenario>-<size>.jsonl)
// and fixtures/manifest.json. Every container it creates is deleted, also on failure.
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { CLINCUS_POOL, incus } from '../../incus/cli.ts'
import { defaultConfig } from '../../server/config/merge.ts'
import { startToolCommand, type ContainerCommand } from '../../server/sessions/commands.ts'
import { tmuxSessionName } from '../../server/sessions/naming.ts'
import type { AgentStatusName } from '../../shared/schemas/sessions.ts'
import {
  MOCK_PORT,
  SCRIPTS,
  SIZES,
  type Expect,
  type SessionScript,
  type Step,
} from './scenarios.ts'

const HERE = dirname(fileURLToPath(import.meta.url))
const ROOT = resolve(HERE, '../..')
const HOME = '/home/code'
const CODE_UID = 1000

export interface FrameEntry {
  file: string
  tool: string
  scenario: string
  size: string
  heldOut: boolean
  note: string
  title: string
  expect: Expect
}

export interface HooksEntry {
  file: string
  scenario: string
  size: string
  /** After replaying the file's first `lines` events, the status is `status`. */
  phases: { lines: number; status: AgentStatusName }[]
}

interface Manifest {
  recorded: { at: string; image: string; versions: Record<string, string> }
  frames: FrameEntry[]
  hooks: HooksEntry[]
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** Secret-looking values (the fake keys included) never reach a fixture. */
const SECRET =
  /\b(sk-[A-Za-z0-9_-]{8,}|gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{16,}|mock-key-not-secret)/g
export function redact(text: string): string {
  return text.replace(SECRET, '[redacted]')
}

class Recorder {
  readonly container: string
  readonly outDir: string

  constructor(container: string, outDir: string) {
    this.container = container
    this.outDir = outDir
  }

  /** `incus exec` of a ContainerCommand (the same user, group, cwd, env and stdin as clincus). */
  async exec(cmd: ContainerCommand, timeoutMs = 60_000): Promise<string> {
    const args = ['exec', this.container]
    if (cmd.opts.user !== undefined) args.push('--user', String(cmd.opts.user))
    if (cmd.opts.group !== undefined) args.push('--group', String(cmd.opts.group))
    if (cmd.opts.cwd !== undefined) args.push('--cwd', cmd.opts.cwd)
    for (const [k, v] of Object.entries(cmd.opts.env ?? {})) args.push('--env', `${k}=${v}`)
    args.push('--', ...cmd.argv)
    return incus.run(args, {
      timeoutMs,
      ...(cmd.opts.stdin === undefined ? {} : { input: cmd.opts.stdin }),
    })
  }

  asCode(argv: string[], input?: string): Promise<string> {
    return this.exec({
      argv,
      opts: {
        user: CODE_UID,
        group: CODE_UID,
        env: { HOME, LANG: 'C.UTF-8' },
        ...(input === undefined ? {} : { stdin: input }),
      },
    })
  }

  asRoot(argv: string[]): Promise<string> {
    return this.exec({ argv, opts: {} })
  }
}

async function prepare(rec: Recorder): Promise<void> {
  await rec.asRoot(['sh', '-c', 'mkdir -p /workspace && chown 1000:1000 /workspace'])
  const mock = await readFile(join(HERE, 'mock-model.mjs'), 'utf8')
  await incus.run(['file', 'push', '-', `${rec.container}/opt/mock-model.mjs`], { input: mock })
  await rec.asRoot([
    'sh',
    '-c',
    `setsid -f node /opt/mock-model.mjs ${MOCK_PORT} /tmp/mock-model.log </dev/null >/tmp/mock-model.out 2>&1`,
  ])
  for (let i = 0; i < 50; i++) {
    const up = await rec.asRoot([
      'sh',
      '-c',
      `curl -sf http://127.0.0.1:${MOCK_PORT}/v1/models >/dev/null && echo up || true`,
    ])
    if (up.includes('up')) return
    await sleep(200)
  }
  throw new Error('the mock model API did not start in the container')
}

/** A clean home for the next scenario: no state of the previous tool run. */
async function resetHome(rec: Recorder, script: SessionScript): Promise<void> {
  // Whatever the previous tool left running (Copilot keeps writing to ~/.copilot for a while).
  await rec.asRoot(['sh', '-c', 'pkill -KILL -u 1000; sleep 0.5; true'])
  await rec.asCode([
    'sh',
    '-c',
    'rm -rf ~/.claude ~/.claude.json ~/.claude.json.backup ~/.config/opencode ~/.local/share/opencode ~/.local/state/opencode ~/.copilot ~/.copilot.json ~/hooks.jsonl /workspace/notes.txt /workspace/recorded-by-mock',
  ])
  for (const [path, content] of Object.entries(script.files)) {
    const full = `${HOME}/${path}`
    await rec.asCode(
      [
        'sh',
        '-c',
        'mkdir -p "$(dirname "$1")" && cat > "$1" && case "$1" in *.sh) chmod +x "$1";; esac',
        'write',
        full,
      ],
      content,
    )
  }
}

async function screen(rec: Recorder, session: string): Promise<{ title: string; text: string }> {
  const out = await rec.asCode([
    'sh',
    '-c',
    'tmux display-message -p -t "=$1:" "#{pane_title}" && tmux capture-pane -p -t "=$1:"',
    'capture',
    session,
  ])
  const nl = out.indexOf('\n')
  return { title: out.slice(0, nl), text: out.slice(nl + 1) }
}

async function hookLines(rec: Recorder): Promise<string[]> {
  const out = await rec.asCode(['sh', '-c', 'cat ~/hooks.jsonl 2>/dev/null || true'])
  return out.split('\n').filter((l) => l.trim() !== '')
}

async function runScript(
  rec: Recorder,
  script: SessionScript,
  size: (typeof SIZES)[number],
  manifest: Manifest,
): Promise<void> {
  const sizeName = `${size.cols}x${size.rows}`
  const tag = `${script.tool}/${script.name} ${sizeName}`
  console.log(`recording ${tag}`)
  await resetHome(rec, script)
  const name = rec.container
  const session = tmuxSessionName(name)
  // Exactly the command clincus runs to start a tool (the profile env goes through stdin).
  await rec.exec(startToolCommand(name, defaultConfig(), script.argv, script.env))
  await rec.asCode([
    'tmux',
    'resize-window',
    '-t',
    `=${session}:`,
    '-x',
    String(size.cols),
    '-y',
    String(size.rows),
  ])
  const dir = join(rec.outDir, script.tool)
  await mkdir(dir, { recursive: true })
  const phases: HooksEntry['phases'] = []
  let n = 0
  let skip = 0
  for (const step of script.steps) {
    if (skip > 0) {
      skip--
      continue
    }
    skip = await runStep(
      rec,
      session,
      step,
      tag,
      async (frame) => {
        n++
        const file = `${script.tool}/${script.name}-${sizeName}-${String(n).padStart(2, '0')}.txt`
        await writeFile(join(rec.outDir, file), redact(frame.text))
        manifest.frames.push({
          file,
          tool: script.tool,
          scenario: script.name,
          size: sizeName,
          heldOut: size.heldOut,
          note: frame.note,
          title: redact(frame.title),
          expect: frame.expect,
        })
      },
      async (status) => {
        phases.push({ lines: (await hookLines(rec)).length, status })
      },
    )
  }
  if (script.tool === 'claude' && phases.length > 0) {
    const lines = await hookLines(rec)
    const file = `claude/hooks-${script.name}-${sizeName}.jsonl`
    await writeFile(join(rec.outDir, file), redact(lines.join('\n') + '\n'))
    manifest.hooks.push({ file, scenario: script.name, size: sizeName, phases })
  }
  await rec.asCode(['tmux', 'kill-server']).catch(() => undefined)
}

type FrameSink = (f: { text: string; title: string; note: string; expect: Expect }) => Promise<void>

async function runStep(
  rec: Recorder,
  session: string,
  step: Step,
  tag: string,
  sink: FrameSink,
  hooksMark: (s: AgentStatusName) => Promise<void>,
): Promise<number> {
  const target = `=${session}:`
  if ('text' in step) await rec.asCode(['tmux', 'send-keys', '-t', target, '-l', '--', step.text])
  else if ('keys' in step) await rec.asCode(['tmux', 'send-keys', '-t', target, ...step.keys])
  else if ('pauseMs' in step) await sleep(step.pauseMs)
  else if ('waitFor' in step) {
    const deadline = Date.now() + (step.timeoutMs ?? 20_000)
    let nudged = Date.now()
    for (;;) {
      if (step.nudge && Date.now() - nudged > 3000) {
        await rec.asCode(['tmux', 'send-keys', '-t', target, ...step.nudge])
        nudged = Date.now()
      }
      const s = await screen(rec, session)
      const all = Array.isArray(step.waitFor) ? step.waitFor : [step.waitFor]
      if (all.every((re) => re.test(s.text)) && !(step.unless?.test(s.text) ?? false)) break
      if (Date.now() > deadline) {
        if (step.skip) {
          console.log(`  ${tag}: no ${String(step.waitFor)}; skipping ${step.skip} steps`)
          return step.skip
        }
        throw new Error(`${tag}: timed out waiting for ${String(step.waitFor)}; screen:\n${s.text}`)
      }
      await sleep(300)
    }
  } else if ('capture' in step) {
    for (let i = 0; i < step.frames; i++) {
      if (i > 0) await sleep(step.everyMs)
      const s = await screen(rec, session)
      await sink({ ...s, note: step.note, expect: step.capture })
    }
  } else await hooksMark(step.hooksExpect)
  return 0
}

async function versions(rec: Recorder): Promise<Record<string, string>> {
  const out = await rec.asCode([
    'sh',
    '-c',
    // The version line itself: Copilot prints what it unpacked on its first run before it.
    'for t in claude copilot opencode; do echo "$t=$($t --version 2>&1 | grep -m1 -E \'[0-9]+[.][0-9]+[.][0-9]+\')"; done; echo "tmux=$(tmux -V)"',
  ])
  return Object.fromEntries(
    out
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  )
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      image: { type: 'string', default: 'clincus' },
      only: { type: 'string' },
      sizes: { type: 'string' },
      out: { type: 'string', default: join(ROOT, 'server/sessions/agent/fixtures') },
    },
  })
  const only = values.only?.split(',').filter(Boolean)
  const scripts = SCRIPTS.filter(
    (s) => !only || only.some((o) => o === s.tool || o === `${s.tool}/${s.name}`),
  )
  const sizes = SIZES.filter(
    (s) => !values.sizes || values.sizes.split(',').includes(`${s.cols}x${s.rows}`),
  )
  const outDir = resolve(values.out)
  const manifestPath = join(outDir, 'manifest.json')
  let manifest: Manifest = {
    recorded: { at: '', image: values.image, versions: {} },
    frames: [],
    hooks: [],
  }
  try {
    manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as Manifest
  } catch {
    // a first recording
  }
  // Re-recorded scenarios replace their old frames; the others stay.
  const redo = (tool: string, scenario: string, size: string) =>
    scripts.some((s) => s.tool === tool && s.name === scenario) &&
    sizes.some((z) => `${z.cols}x${z.rows}` === size)
  for (const f of manifest.frames.filter((f) => redo(f.tool, f.scenario, f.size)))
    await rm(join(outDir, f.file), { force: true })
  manifest.frames = manifest.frames.filter((f) => !redo(f.tool, f.scenario, f.size))
  manifest.hooks = manifest.hooks.filter((h) => !redo('claude', h.scenario, h.size))

  const pools = JSON.stringify(await incus.query('/1.0/storage-pools'))
  const pool = pools.includes(`/${CLINCUS_POOL}"`) ? ['-s', CLINCUS_POOL] : []
  for (const size of sizes) {
    const container = `rec-agents-${randomBytes(4).toString('hex')}`
    console.log(`creating ${container} from ${values.image}`)
    await incus.run(['launch', values.image, container, ...pool], { timeoutMs: 180_000 })
    try {
      const rec = new Recorder(container, outDir)
      await prepare(rec)
      manifest.recorded = {
        at: new Date().toISOString(),
        image: values.image,
        versions: await versions(rec),
      }
      for (const script of scripts) {
        try {
          await runScript(rec, script, size, manifest)
        } catch (err) {
          console.error(`FAILED ${script.tool}/${script.name}: ${String(err)}`)
          await rec.asCode(['tmux', 'kill-server']).catch(() => undefined)
        }
        manifest.frames.sort((a, b) => a.file.localeCompare(b.file))
        await writeFile(manifestPath, JSON.stringify(manifest, null, 2) + '\n')
      }
    } finally {
      await incus
        .run(['delete', '--force', container], { timeoutMs: 120_000 })
        .catch((err: unknown) => {
          console.error(`could not delete ${container}: ${String(err)}`)
        })
    }
  }
  console.log(`${manifest.frames.length} frames, ${manifest.hooks.length} hook files in ${outDir}`)
}

await main()
