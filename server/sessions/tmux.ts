// The project's one tmux configuration (issue 14). The commands are data here: the images carry
// them rendered as /etc/tmux.conf (tmux reads it whenever a server starts, also for a tmux the
// user runs by hand), and the tool's tmux session is started with the same commands on its
// command line, so a session on an image built before this file existed gets them on resume too.
// Nothing is read back from the container: it is hostile, and tmux inside it is all it steers.
//
// Checked against tmux 3.3a (Debian 12, the images' suite); newer tmux accepts every line too.

/** The tool's tmux session is made at this size; the first client to attach resizes it. */
const INITIAL_SIZE = { cols: 200, rows: 50 } as const

/**
 * Features of the browser terminal (xterm.js 6), declared for the client's TERM (every
 * terminal's exec sets TERM=xterm-256color). tmux uses the outer terminal's features, not the
 * pane's: without `RGB` it reduces 24-bit SGR to the 256-colour palette, without `clipboard` it
 * drops OSC 52, without `sync` it does not wrap redraws in DEC 2026. tmux 3.3a ignores names it
 * does not know (`hyperlinks` arrived in 3.4).
 */
export const BROWSER_TERMINAL_FEATURES = [
  'RGB',
  'clipboard',
  'sync',
  'extkeys',
  'usstyle',
  'strikethrough',
  'overline',
  'focus',
  'title',
  'cstyle',
  'bpaste',
  'hyperlinks',
] as const

/**
 * The configuration, one tmux command per entry (argv after `tmux`, no shell quoting). Sources:
 * tmux(1) for each option; anthropics/claude-code#36785 for CLAUDE_CODE_TMUX_TRUECOLOR (Claude
 * Code clamps itself to 256 colours whenever $TMUX is set, whatever COLORTERM says, unless this
 * variable is in its environment at launch).
 */
export const TMUX_COMMANDS: readonly (readonly string[])[] = [
  // Lines that scroll off the pane stay reachable by the wheel (copy mode) and by search.
  ['set-option', '-g', 'history-limit', '50000'],
  // The wheel scrolls tmux's copy mode instead of reaching the agent as arrow keys.
  ['set-option', '-g', 'mouse', 'on'],
  // A lone Esc reaches the agent after 10 ms, not tmux's default 500 ms.
  ['set-option', '-s', 'escape-time', '10'],
  // OSC 52 written by a program in the pane goes on to the browser (reading it stays refused:
  // tmux answers `?` queries only from its own paste buffers, and only with set-clipboard on).
  ['set-option', '-s', 'set-clipboard', 'on'],
  // Modified keys (Shift+Enter as CSI 27;2;13~) reach programs that ask for them.
  ['set-option', '-s', 'extended-keys', 'on'],
  // Debian's ncurses-base (in every image) has tmux-256color: italics and the rest, which
  // screen-256color lacks.
  ['set-option', '-g', 'default-terminal', 'tmux-256color'],
  // A fixed index, so applying the configuration twice (image file, then command line) leaves
  // one entry.
  ['set-option', '-s', 'terminal-features[90]', `xterm*:${BROWSER_TERMINAL_FEATURES.join(':')}`],
  // tmux 3.3a's `sync` writes the DCS form (ESC P = 1 s), which xterm.js ignores; tmux 3.4 and
  // later write DEC mode 2026, which xterm.js 6 implements. Start is %p1=1, end %p1=2.
  ['set-option', '-s', 'terminal-overrides[90]', 'xterm*:Sync=\\E[?2026%?%p1%{1}%-%tl%eh%;'],
  ['set-environment', '-g', 'COLORTERM', 'truecolor'],
  ['set-environment', '-g', 'CLAUDE_CODE_TMUX_TRUECOLOR', '1'],
  // The browser keeps what scrolls off the pane in its own scrollback, where its search finds it:
  // tmux stays in the browser terminal's normal screen (no smcup/rmcup) and scrolls with line
  // feeds (no indn: xterm.js keeps no scrollback for CSI S). Added by the browser side (termweb).
  ['set-option', '-s', 'terminal-overrides[91]', 'xterm*:smcup@:rmcup@:indn@'],
]

/** The environment a terminal's program needs for 24-bit colour (the shell tab, tmux clients). */
export const TRUECOLOR_ENV = { COLORTERM: 'truecolor' } as const

const PLAIN_WORD = /^[A-Za-z0-9_./@%+=:,*[\]-]+$/

/** One argument in tmux's configuration syntax: single quotes take everything but a quote. */
function quoteConfWord(word: string): string {
  if (PLAIN_WORD.test(word)) return word
  if (word.includes("'") || /[\n\r]/.test(word))
    throw new Error(`tmux configuration word cannot be quoted: ${JSON.stringify(word)}`)
  return `'${word}'`
}

/** The configuration as a tmux.conf file (what the images carry at /etc/tmux.conf). */
export function renderTmuxConf(): string {
  const lines = [
    '# clincus: the tmux configuration of agent sessions (generated from server/sessions/tmux.ts;',
    '# the server also applies these commands whenever it starts a session).',
    ...TMUX_COMMANDS.map((cmd) => cmd.map(quoteConfWord).join(' ')),
  ]
  return `${lines.join('\n')}\n`
}

/** Where the images carry the configuration: tmux's system-wide file, which only root can edit. */
export const TMUX_CONF_PATH = '/etc/tmux.conf'

/**
 * One word of a command given on tmux's command line. tmux ends a command at any word that ends
 * in `;` (cmd-parse.c, cmd_parse_from_arguments) and turns a final `\;` into `;`: a word that
 * ends in `;` gets a backslash before it, so it arrives unchanged (`a;` → `a;`, `b\;` → `b\;`).
 */
export function tmuxArgWord(word: string): string {
  return word.endsWith(';') ? `${word.slice(0, -1)}\\;` : word
}

/**
 * argv (from `tmux` on) that starts the tool's session: the server with the configuration
 * applied before the first pane exists (so `history-limit` and the environment reach it), then
 * the detached session running `command` (argv, not a shell line) in `cwd`. The commands are
 * separated by `;` words; no word of `command` can end its command early.
 */
export function tmuxStartArgv(session: string, cwd: string, command: readonly string[]): string[] {
  const argv = ['tmux', 'start-server']
  for (const cmd of TMUX_COMMANDS) argv.push(';', ...cmd.map(tmuxArgWord))
  argv.push(';', 'new-session', '-d', '-s', session)
  argv.push('-x', String(INITIAL_SIZE.cols), '-y', String(INITIAL_SIZE.rows), '-c', cwd)
  argv.push(...command.map(tmuxArgWord))
  return argv
}
