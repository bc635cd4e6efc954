// The hook payload parser: Claude Code's hook input (docs: code.claude.com/docs/en/hooks), Copilot
// CLI's event names, and hostile lines (anything a container may write).
import { describe, expect, it } from 'vitest'
import { parseHookLine, REASON_MAX, trimReason } from './hooks.ts'

const claude = (event: string, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({
    session_id: 'abc',
    transcript_path: '/home/code/.claude/projects/x/abc.jsonl',
    cwd: '/workspace',
    permission_mode: 'bypassPermissions',
    hook_event_name: event,
    ...extra,
  })

describe('parseHookLine', () => {
  it('maps the Claude Code events to statuses', () => {
    expect(parseHookLine(claude('UserPromptSubmit', { prompt: 'hi' }))).toEqual({
      status: 'working',
    })
    expect(parseHookLine(claude('PreToolUse', { tool_name: 'Bash', tool_input: {} }))).toEqual({
      status: 'working',
    })
    expect(parseHookLine(claude('PostToolUse', { tool_name: 'Bash' }))).toEqual({
      status: 'working',
    })
    expect(parseHookLine(claude('Stop', { stop_hook_active: false }))).toEqual({ status: 'idle' })
    expect(parseHookLine(claude('SessionStart', { source: 'startup' }))).toEqual({
      status: 'idle',
    })
    expect(parseHookLine(claude('SessionEnd', { reason: 'prompt_input_exit' }))).toEqual({
      status: 'exited',
    })
    expect(parseHookLine(claude('SubagentStop'))).toBeNull()
  })

  it('a Notification waits with its message; a permission prompt is urgent; idle_prompt is idle', () => {
    expect(
      parseHookLine(
        claude('Notification', {
          message: 'Which colour?',
          notification_type: 'elicitation_dialog',
        }),
      ),
    ).toEqual({ status: 'waiting', reason: 'Which colour?' })
    expect(
      parseHookLine(
        claude('Notification', {
          message: 'Claude needs your permission to use Bash',
          notification_type: 'permission_prompt',
        }),
      ),
    ).toEqual({
      status: 'waiting',
      reason: 'Claude needs your permission to use Bash',
      urgent: true,
    })
    expect(
      parseHookLine(
        claude('Notification', {
          message: 'Claude is waiting for your input',
          notification_type: 'idle_prompt',
        }),
      ),
    ).toEqual({ status: 'idle' })
    // Before notification_type existed: told apart by the text.
    expect(
      parseHookLine(
        claude('Notification', { message: 'Claude needs your permission to use Edit' }),
      ),
    ).toMatchObject({ status: 'waiting', urgent: true })
    expect(
      parseHookLine(claude('Notification', { message: 'Claude is waiting for your input' })),
    ).toEqual({ status: 'idle' })
    expect(
      parseHookLine(claude('Notification', { message: 'ok', notification_type: 'auth_success' })),
    ).toBeNull()
  })

  it('reads Copilot CLI event names', () => {
    expect(parseHookLine(JSON.stringify({ event: 'userPromptSubmitted' }))).toEqual({
      status: 'working',
    })
    expect(parseHookLine(JSON.stringify({ hook_event_name: 'agentStop' }))).toEqual({
      status: 'idle',
    })
    expect(parseHookLine(JSON.stringify({ hook_event_name: 'sessionEnd' }))).toEqual({
      status: 'exited',
    })
  })

  it('ignores anything else: garbage, wrong types, unknown events, huge names', () => {
    for (const line of [
      '',
      'garbage',
      '{',
      'null',
      '[]',
      '42',
      '"Stop"',
      '{}',
      JSON.stringify({ hook_event_name: 42 }),
      JSON.stringify({ hook_event_name: 'Stop'.repeat(100) }),
      JSON.stringify({ hook_event_name: 'Notification', message: { x: 1 } }),
      JSON.stringify({ hook_event_name: '__proto__' }),
      JSON.stringify({ hook_event_name: 'constructor' }),
      '\u0000\u0001\uffff',
    ])
      expect(parseHookLine(line), line).toBeNull()
  })

  it('trims a reason to one printable line of at most 200 characters', () => {
    const sig = parseHookLine(
      claude('Notification', { message: `a\nb\u001b[31m\t${'x'.repeat(5000)}` }),
    )
    expect(sig?.reason?.startsWith('a b [31m x')).toBe(true)
    expect(Array.from(sig?.reason ?? '').length).toBe(REASON_MAX)
    expect(trimReason('  short  ')).toBe('short')
    expect(Array.from(trimReason('é'.repeat(300))).length).toBe(REASON_MAX)
  })

  it('drops the invisible characters that make a reason read as something else', () => {
    // A right-to-left override shows "Allow rm -rf ~/exe.txt" as "...txt.exe"; zero-width and
    // isolate characters hide text. The browser drops them too (attention.ts cleanReason).
    const sig = parseHookLine(
      claude('Notification', {
        notification_type: 'permission_prompt',
        message: 'Allow \u202etxt.exe\u202c \u200bfile\u2066 \ufeffnow?',
      }),
    )
    expect(sig?.reason).toBe('Allow txt.exe file now?')
  })
})
