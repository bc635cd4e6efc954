// The screen fallback's pure parts: the tmux configuration that reports alerts through the hook
// script, the parse of one pane read (hostile output), and what a read says.
import { describe, expect, it } from 'vitest'
import {
  parsePaneRead,
  readPaneCommand,
  screenSignal,
  screenTrigger,
  tmuxConf,
} from './screen-watch.ts'

describe('screen watch', () => {
  it('the tmux configuration turns on bell and silence alerts and hooks them to the script', () => {
    const conf = tmuxConf('/home/code')
    expect(conf).toContain('set-option -wg monitor-silence 3')
    expect(conf).toContain('set-option -g silence-action any')
    for (const hook of ['alert-bell', 'alert-silence', 'pane-exited', 'pane-died'])
      expect(conf).toMatch(
        new RegExp(
          `^set-hook -g ${hook} "run-shell -b 'bash /home/code/\\.clincus/agent-hook ClincusScreen[A-Za-z]+ </dev/null'"$`,
          'm',
        ),
      )
    expect(conf).not.toContain('pane-title-changed')
  })

  it('knows its triggers and nothing else', () => {
    expect(screenTrigger('ClincusScreenBell')).toBe('ClincusScreenBell')
    expect(screenTrigger('ClincusScreen')).toBeNull()
    expect(screenTrigger('Stop')).toBeNull()
  })

  it('reads the pane as the code user, the session named after `--`-free positional args', () => {
    const cmd = readPaneCommand('clincus-ab-1', { uid: 1000, home: '/home/code' })
    expect(cmd.argv.slice(0, 2)).toEqual(['bash', '-c'])
    expect(cmd.argv.slice(3)).toEqual(['clincus-screen', 'clincus-clincus-ab-1:'])
    expect(cmd.opts).toEqual({ user: 1000, group: 1000, env: { HOME: '/home/code' } })
  })

  it('parses a read; refuses anything else', () => {
    expect(parsePaneRead('1|0|✳ Claude Code|x\n> hi\n')).toEqual({
      toolRunning: true,
      dead: false,
      title: '✳ Claude Code|x',
      screen: '> hi\n',
    })
    for (const bad of ['', 'garbage', '2|0|t\n', '1|x|t\n', '1\n'])
      expect(parsePaneRead(bad), bad).toBeNull()
    expect(parsePaneRead(`1|0|${'t'.repeat(10_000)}\n`)?.title.length).toBe(256)
    expect(parsePaneRead(`1|0|t\n${'x'.repeat(1024 * 1024)}`)?.screen.length).toBeLessThan(70_000)
  })

  it('a pane back at the shell, or dead, is exited; an unknown screen says nothing', () => {
    const pane = { toolRunning: true, dead: false, title: '', screen: '' }
    expect(screenSignal('claude', { ...pane, toolRunning: false }, true)).toEqual({
      status: 'exited',
    })
    expect(screenSignal('claude', { ...pane, dead: true }, false)).toEqual({ status: 'exited' })
    expect(screenSignal('claude', pane, true)).toBeNull()
  })
})
