import { describe, expect, it } from 'vitest'
import { renderTmuxConf, TMUX_COMMANDS, tmuxArgWord, tmuxStartArgv, TRUECOLOR_ENV } from './tmux.ts'

/** The commands of a tmux command line: the words between `;` words. */
function commands(argv: readonly string[]): string[][] {
  const out: string[][] = [[]]
  for (const w of argv.slice(1)) {
    if (w === ';') out.push([])
    else out[out.length - 1]?.push(w)
  }
  return out
}

describe('the tmux configuration', () => {
  it('sets what issue 14 asks for: mouse, fast Esc, OSC 52, truecolor, sync, extended keys, history', () => {
    const conf = renderTmuxConf()
    expect(conf).toContain('set-option -g mouse on\n')
    expect(conf).toContain('set-option -s escape-time 10\n')
    expect(conf).toContain('set-option -s set-clipboard on\n')
    expect(conf).toContain('set-option -s extended-keys on\n')
    expect(conf).toContain('set-option -g default-terminal tmux-256color\n')
    expect(conf).toContain('set-environment -g COLORTERM truecolor\n')
    expect(conf).toContain('set-environment -g CLAUDE_CODE_TMUX_TRUECOLOR 1\n')
    expect(conf).toMatch(/^set-option -g history-limit (\d+)$/m)
    expect(Number(/history-limit (\d+)/.exec(conf)?.[1])).toBeGreaterThanOrEqual(50_000)
    const features = /^set-option -s terminal-features\[90\] (\S+)$/m.exec(conf)?.[1]
    expect(features?.split(':')).toEqual(
      expect.arrayContaining(['xterm*', 'RGB', 'clipboard', 'sync', 'extkeys']),
    )
    expect(TRUECOLOR_ENV).toEqual({ COLORTERM: 'truecolor' })
  })

  it('renders one line per command, quoting only what needs it', () => {
    const lines = renderTmuxConf()
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('#'))
    expect(lines).toHaveLength(TMUX_COMMANDS.length)
    // Outside single quotes: nothing tmux's parser would read specially.
    for (const line of lines) expect(line.replace(/'[^']*'/g, '')).not.toMatch(/[;"\\{}$~#]/)
    expect(renderTmuxConf()).toContain(
      "set-option -s terminal-overrides[90] 'xterm*:Sync=\\E[?2026%?%p1%{1}%-%tl%eh%;'\n",
    )
  })

  it('starts the server with the configuration before the session, then runs the command', () => {
    const argv = tmuxStartArgv('clincus-x', '/workspace', ['bash', '-c', 'echo hi'])
    expect(argv[0]).toBe('tmux')
    const cmds = commands(argv)
    expect(cmds[0]).toEqual(['start-server'])
    // A configuration word that ends in ';' (the Sync override) is escaped like any other.
    expect(cmds.slice(1, -1)).toEqual(TMUX_COMMANDS.map((c) => c.map(tmuxArgWord)))
    expect(argv.filter((w) => w === ';')).toHaveLength(TMUX_COMMANDS.length + 1)
    expect(cmds.at(-1)).toEqual([
      'new-session',
      '-d',
      '-s',
      'clincus-x',
      '-x',
      '200',
      '-y',
      '50',
      '-c',
      '/workspace',
      'bash',
      '-c',
      'echo hi',
    ])
  })

  it('keeps a command word that ends in ";" from ending the command (tmux unescapes "\\;")', () => {
    expect(tmuxArgWord('a;')).toBe('a\\;')
    expect(tmuxArgWord('b\\;')).toBe('b\\\\;')
    expect(tmuxArgWord(';')).toBe('\\;')
    expect(tmuxArgWord('a;b')).toBe('a;b')
    const argv = tmuxStartArgv('s', '/workspace', ['tool', ';', 'kill-server', 'x;'])
    expect(argv.filter((w) => w === ';')).toHaveLength(TMUX_COMMANDS.length + 1)
    expect(argv.slice(-4)).toEqual(['tool', '\\;', 'kill-server', 'x\\;'])
  })
})
