// Issue 14 row 6 (security), byte-level through the live bridge: a paste with a split
// end-of-paste marker, prepared by the browser's own code (shared/terminal/paste.ts), lands as
// literal text inside one bracket in bash, in the shell tab and through tmux in the agent tab;
// nothing runs until the user's Enter. A control sends what `main` used to send for the same
// text, to show the attack is real here.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { ESCAPE_SYMBOL, preparePaste } from '../../shared/terminal/paste.ts'
import {
  describeIncus,
  execAsCode,
  startLiveServer,
  type LiveServer,
} from '../test/incus-harness.ts'
import { TerminalClient, waitUntil } from '../test/ws-client.ts'

let server: LiveServer
let home: string
let id: string

/** The payload of issue 14 row 6, creating `file` when its second line runs. */
function splitMarkerPaste(file: string): string {
  return `echo x\x1b[20\x1b[201~1~\rtouch ${file}\r`
}

/**
 * What `main` sent for that text before the fix: its one pass cut `ESC[201~` out, which joined
 * `ESC[20` and `1~` into a new end marker, and wrapped the rest in markers.
 */
function mainsPreparedPaste(file: string): string {
  return `\x1b[200~echo x\x1b[201~\rtouch ${file}\r\x1b[201~`
}

async function exists(file: string): Promise<boolean> {
  return (await execAsCode(id, `test -e ${file}`)).exitCode === 0
}

/** A v1 client on the shell tab or the agent tab, at a bash prompt with bracketed paste on. */
async function bashPrompt(tab: 'shell' | 'agent'): Promise<TerminalClient> {
  const path = tab === 'shell' ? 'shell' : 'terminal'
  const t = new TerminalClient(`${server.wsUrl}/ws/${path}/${id}?cols=120&rows=30`, {
    protocol: 'v1',
  })
  await t.opened
  // bash (readline) at its prompt has bracketed paste on; tmux turns it on for its client
  // when it attaches to a pane that has it.
  await waitUntil('bracketed paste mode on', () => t.text.includes('\x1b[?2004h'))
  // A fresh prompt whatever an earlier test left on the line: Ctrl+C abandons it.
  t.clear()
  t.send('\x03')
  await t.waitFor(/\$ /)
  return t
}

/**
 * Pastes `bytes`, then types ` #typed` and waits for its echo: bash reads input in order and
 * runs a command before reading more, so once the typed text is echoed, any command the paste
 * smuggled out of its bracket has run.
 */
async function pasteThenType(t: TerminalClient, bytes: string): Promise<void> {
  t.clear()
  t.send(bytes)
  t.send(' #typed')
  await t.waitFor('#typed')
}

describeIncus('pasting a split end-of-paste marker (issue 14 row 6)', () => {
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'clincus-paste-'))
    server = await startLiveServer({ home })
    id = await server.launch('paste')
    // The fake tool reads lines without readline; its wrapper leaves a login bash in the pane.
    const agent = new TerminalClient(`${server.wsUrl}/ws/terminal/${id}`, { protocol: 'v1' })
    await agent.opened
    await waitUntil('the first redraw', () => agent.bytes > 0)
    agent.send('exit\r')
    await agent.waitFor(/exited with code 0/)
    await agent.close()
  })

  afterAll(async () => {
    await server.close()
    await rm(home, { recursive: true, force: true })
  })

  for (const tab of ['shell', 'agent'] as const) {
    it(`control (${tab} tab): what main sent runs the smuggled command without Enter`, async () => {
      const file = `/tmp/p-control-${tab}`
      const t = await bashPrompt(tab)
      await pasteThenType(t, mainsPreparedPaste(file))
      // Awaited, not checked once: while bash runs the smuggled `echo x` the tty is in cooked
      // mode, so the kernel may echo ` #typed` before `touch` has run (1 in 3 runs here).
      await waitUntil(`${file} made by the smuggled command`, () => exists(file), {
        timeoutMs: 15_000,
      })
      await t.close()
    })

    it(`${tab} tab: the sanitised paste stays literal text in one bracket; only Enter runs it`, async () => {
      const file = `/tmp/p-${tab}`
      const t = await bashPrompt(tab)
      const bytes = preparePaste(splitMarkerPaste(file), true)
      // The bytes on the wire: one bracket, no other ESC.
      expect(bytes.startsWith('\x1b[200~')).toBe(true)
      expect(bytes.endsWith('\x1b[201~')).toBe(true)
      expect(bytes.slice(6, -6)).not.toContain('\x1b')
      await pasteThenType(t, bytes)
      expect(await exists(file)).toBe(false)
      expect(t.text).not.toMatch(/^x\r?$/m)

      // The user presses Enter: the paste runs as typed text, markers and all, as one unit.
      t.clear()
      t.send('\r')
      await t.waitFor(`x${ESCAPE_SYMBOL}[20${ESCAPE_SYMBOL}[201~1~`)
      await waitUntil(`${file} made by the pasted second line`, () => exists(file), {
        timeoutMs: 15_000,
      })
      await t.close()
    })
  }

  // Red team: bracketed paste does not protect against C0 controls, because they act before the
  // application reads the paste. The pty's line discipline turns ^C into SIGINT: bash drops the
  // bracket and reads the rest of the paste as typed keys. tmux takes ^B as its prefix when it
  // is the first key of a read (its assume-paste-time only covers keys arriving within 1 ms of
  // the previous one), bracket or not.
  it('red team control (shell tab): an unsanitised ^C in a bracket runs the rest without Enter', async () => {
    const file = '/tmp/p-ctrl-c-control'
    const t = await bashPrompt('shell')
    await pasteThenType(t, `\x1b[200~echo x\x03  touch ${file}\r\x1b[201~`)
    await waitUntil(`${file} made by the smuggled command`, () => exists(file), {
      timeoutMs: 15_000,
    })
    await t.close()
  })

  it('red team (shell tab): a pasted ^C is inert text; nothing runs without Enter', async () => {
    const file = '/tmp/p-ctrl-c'
    const t = await bashPrompt('shell')
    await pasteThenType(t, preparePaste(`echo x\x03  touch ${file}\n`, true))
    expect(await exists(file)).toBe(false)
    await t.close()
  })

  /**
   * Sends a prepared paste in frames split at `cuts`, with a round trip to the container between
   * frames. The browser sends a long paste in 4 KiB chunks, one per task, so a page's padding
   * puts ^B at one chunk's start and tmux's command at the next one's; the round trip stands for
   * the gap between chunks (tmux treats keys that arrive within 1 ms as typed-ahead paste).
   */
  async function pasteInPieces(t: TerminalClient, bytes: string, cuts: number[]): Promise<void> {
    t.clear()
    let from = 0
    for (const cut of [...cuts, bytes.length]) {
      t.send(bytes.slice(from, cut))
      from = cut
      await execAsCode(id, 'true')
    }
  }

  it("red team control (agent tab): an unsanitised ^B starting a read is tmux's prefix, in a bracket too", async () => {
    const file = '/tmp/p-prefix-control'
    const t = await bashPrompt('agent')
    const bytes = `\x1b[200~echo a\x02:run-shell "touch ${file}"\r\x1b[201~`
    await pasteInPieces(t, bytes, [bytes.indexOf('\x02'), bytes.indexOf('run-shell')])
    await waitUntil(`${file} made by tmux's run-shell`, () => exists(file), { timeoutMs: 15_000 })
    await t.close()
  })

  it('red team (agent tab): a pasted ^B is inert text; tmux runs no command', async () => {
    const file = '/tmp/p-prefix'
    const t = await bashPrompt('agent')
    const bytes = preparePaste(`echo a\x02:run-shell "touch ${file}"\n`, true)
    // Cut where the ^B was, as in the control.
    const at = bytes.indexOf('echo a') + 'echo a'.length
    await pasteInPieces(t, bytes, [at, bytes.indexOf('run-shell')])
    t.send(' #typed')
    await t.waitFor('#typed')
    expect(await exists(file)).toBe(false)
    await t.close()
  })
})
