// xterm.js 6 bound to a TerminalConnection, as a Svelte attachment: `{@attach view.attach}` creates
// the terminal when its element mounts and disposes everything when it unmounts.
//
// Sizing follows the web-terminal pitfalls (peers §3.2): a ResizeObserver (not window resize)
// refits, a hidden pane (zero size) is never fitted, and only a changed cols×rows is sent.
// Rendering prefers WebGL and falls back to the DOM renderer when WebGL is unavailable or its
// context is lost (xterm 6 has no canvas renderer).
//
// Fidelity (issue 14): tmux 3.3a's cell widths (widths.ts: Unicode 11 as glibc counts it, with
// tmux's ZWJ joining; the graphemes addon would make ❤️ and 👍🏽 two cells where tmux has 1
// and 4), OSC 52 clipboard writes but never reads, Option as a setting, Shift+Enter as a newline,
// touch scrolling, and every paste through one sanitiser.
import { ClipboardAddon } from '@xterm/addon-clipboard'
import { FitAddon } from '@xterm/addon-fit'
import { SearchAddon } from '@xterm/addon-search'
import { WebLinksAddon } from '@xterm/addon-web-links'
import { WebglAddon } from '@xterm/addon-webgl'
import { Terminal, type ITheme } from '@xterm/xterm'
import { untrack } from 'svelte'
import { preparePaste } from '../../../../shared/terminal/paste.ts'
import {
  isClipboardQuery,
  isInsertedClip,
  writeClipboard,
  writeOnlyClipboard,
} from './clipboard.ts'
import { TerminalConnection } from './connection.svelte.ts'
import { isShiftEnter, pageAction, SHIFT_ENTER_SEQUENCE } from './keys.ts'
import { optionAsMeta, rendererPreference, SCROLLBACK, watchOptionAsMeta } from './preferences.ts'
import { exposeForTests } from './test-hooks.ts'
import { swipeScroll } from './touch-scroll.ts'
import { TMUX_WIDTHS, tmuxWidths, unicode11Provider } from './widths.ts'

export type TerminalKind = 'agent' | 'shell'
const DARK: ITheme = {
  background: '#0f1117',
  foreground: '#e6e6e6',
  cursor: '#e6e6e6',
  cursorAccent: '#0f1117',
  selectionBackground: '#3a4a6b',
  black: '#1c1f26',
  red: '#ff6b6b',
  green: '#7bd88f',
  yellow: '#e6c07b',
  blue: '#6cb6ff',
  magenta: '#d19bff',
  cyan: '#56d4dd',
  white: '#d0d0d0',
  brightBlack: '#6b7280',
  brightRed: '#ff8787',
  brightGreen: '#95e6a8',
  brightYellow: '#f0d399',
  brightBlue: '#8cc8ff',
  brightMagenta: '#e0b8ff',
  brightCyan: '#7ee3ea',
  brightWhite: '#ffffff',
}

const LIGHT: ITheme = {
  background: '#fbfbfc',
  foreground: '#1f2328',
  cursor: '#1f2328',
  cursorAccent: '#fbfbfc',
  selectionBackground: '#b6d3ff',
  black: '#24292f',
  red: '#c62828',
  green: '#1a7f37',
  yellow: '#8a6100',
  blue: '#0b5cd5',
  magenta: '#8250df',
  cyan: '#0f7b8a',
  white: '#6e7781',
  brightBlack: '#57606a',
  brightRed: '#d73a49',
  brightGreen: '#2da44e',
  brightYellow: '#9a6700',
  brightBlue: '#218bff',
  brightMagenta: '#a475f9',
  brightCyan: '#1b9aaa',
  brightWhite: '#8c959f',
}

const isMac = typeof navigator !== 'undefined' && /Mac|iPhone|iPad/.test(navigator.userAgent)

function webglAvailable(): boolean {
  try {
    return document.createElement('canvas').getContext('webgl2') !== null
  } catch {
    return false
  }
}

export interface TerminalViewOptions {
  sessionId: string
  kind: TerminalKind
  /** The socket's URL, asked for on every (re)connect (it carries a single-use ticket). */
  url: () => string | Promise<string>
  /** Opens the search bar (Ctrl+Shift+F inside the terminal). */
  onSearchRequest?: () => void
  /**
   * Moves focus out of the terminal (Ctrl+Shift+M): the terminal takes Tab for itself, so
   * keyboard users need a way out (WCAG 2.1.2, no keyboard trap).
   */
  onLeave?: () => void
  /** Takes the keyboard focus when it opens. */
  autofocus?: boolean
  /**
   * A program wrote `text` to the clipboard with OSC 52 (`written`: whether the browser let it,
   * which needs the page focused in a secure context).
   */
  onClipboardWrite?: (text: string, written: boolean) => void
}

export class TerminalView {
  readonly kind: TerminalKind
  readonly connection: TerminalConnection
  renderer: 'webgl' | 'dom' | null = $state(null)
  size: { cols: number; rows: number } | null = $state(null)
  #term: Terminal | null = null
  #search: SearchAddon | null = null
  #running = false
  #attached = false
  /** Fractional lines of swipes not yet scrolled (the browser's scrollback). */
  #swipeRest = 0
  readonly #opts: TerminalViewOptions

  constructor(opts: TerminalViewOptions) {
    this.#opts = opts
    this.kind = opts.kind
    this.connection = new TerminalConnection({
      url: opts.url,
      sink: {
        write: (data, done) => {
          if (this.#term) this.#term.write(data, done)
          else done()
        },
        notice: (text) => {
          this.#term?.write(`\r\n\x1b[2m${text}\x1b[0m\r\n`)
        },
        size: () => (this.#term ? { cols: this.#term.cols, rows: this.#term.rows } : null),
      },
      // The agent's tmux session may not exist yet right after a start or resume; a shell that
      // exits is the user's doing.
      earlyExitMs: opts.kind === 'agent' ? 3000 : 0,
    })
  }

  /** Whether the session is running: connect when it is, stop retrying when it is not. */
  setRunning(running: boolean): void {
    // Called from an effect: reading the connection state here must not make the effect
    // depend on it (the state changes right below, which would re-run the effect for ever).
    untrack(() => {
      this.#setRunning(running)
    })
  }

  #setRunning(running: boolean): void {
    const was = this.#running
    this.#running = running
    const kind = this.connection.state.kind
    if (!running) {
      if (kind !== 'idle' && kind !== 'exited')
        this.connection.suspend('The session is not running')
      return
    }
    if (!this.#attached || kind === 'open' || kind === 'connecting') return
    // Running again (resumed): whatever ended the previous connection is over.
    if (!was || kind === 'idle' || kind === 'unavailable') this.connection.connect()
  }

  reconnect(): void {
    this.connection.connect()
  }

  attach = (el: HTMLElement): (() => void) =>
    untrack(() => {
      const dark = window.matchMedia('(prefers-color-scheme: dark)')
      const term = new Terminal({
        scrollback: SCROLLBACK,
        cursorBlink: true,
        fontSize: 14,
        fontFamily:
          "ui-monospace, 'JetBrains Mono', 'Fira Code', 'Cascadia Mono', 'DejaVu Sans Mono', Menlo, Consolas, monospace",
        theme: dark.matches ? DARK : LIGHT,
        // Option types the layout's character (Option+L is @ on a German Mac) unless the user
        // turned "Option as Meta" on; applied live below.
        macOptionIsMeta: optionAsMeta(),
        // While a program has the mouse (tmux in the agent tab), Shift+drag selects with the
        // browser instead; on a Mac it is Option+drag.
        macOptionClickForcesSelection: true,
        // `term.unicode` (the width addon's switch) is a proposed API in xterm 6.
        allowProposedApi: true,
      })
      const fit = new FitAddon()
      const search = new SearchAddon()
      term.loadAddon(fit)
      term.loadAddon(search)
      term.loadAddon(new WebLinksAddon())
      term.unicode.register(tmuxWidths(unicode11Provider()))
      term.unicode.activeVersion = TMUX_WIDTHS
      term.loadAddon(
        new ClipboardAddon(
          undefined,
          writeOnlyClipboard((text, written) => this.#opts.onClipboardWrite?.(text, written)),
        ),
      )
      // Registered after the addon, so it runs first: a clipboard query (OSC 52 with `?`) is
      // swallowed unanswered; writes fall through to the addon.
      const clipboardQueries = term.parser.registerOscHandler(52, isClipboardQuery)
      term.open(el)
      this.#term = term
      this.#search = search

      let webgl: WebglAddon | null = null
      if (rendererPreference() === 'auto' && webglAvailable()) {
        try {
          webgl = new WebglAddon()
          webgl.onContextLoss(() => {
            // Back to the DOM renderer; xterm redraws with it when the addon is gone.
            webgl?.dispose()
            webgl = null
            this.renderer = 'dom'
          })
          term.loadAddon(webgl)
          this.renderer = 'webgl'
        } catch {
          webgl?.dispose()
          webgl = null
          this.renderer = 'dom'
        }
      } else {
        this.renderer = 'dom'
      }

      const onTheme = (e: MediaQueryListEvent): void => {
        term.options.theme = e.matches ? DARK : LIGHT
      }
      dark.addEventListener('change', onTheme)

      const disposables = [
        term.onData((data) => {
          this.connection.input(data)
        }),
        term.onBinary((data) => {
          const bytes = new Uint8Array(data.length)
          for (let i = 0; i < data.length; i++) bytes[i] = data.charCodeAt(i) & 0xff
          this.connection.input(bytes)
        }),
        term.onResize(({ cols, rows }) => {
          this.size = { cols, rows }
          this.connection.resize(cols, rows)
        }),
      ]

      term.attachCustomKeyEventHandler((e) => this.#onKey(e))
      // The wheel never becomes keys for the agent: xterm turns it into arrow keys in an
      // alternate screen without mouse reporting (tmux without `mouse on`), and the agent then
      // walked its prompt history. tmux's mouse mode (or the browser's scrollback) scrolls.
      term.attachCustomWheelEventHandler(
        () => this.kind !== 'agent' || this.#reportsWheel(term) || !this.#inAlternate(term),
      )
      const stopSwipes = swipeScroll(el, (dy, x, y) => {
        this.#swipe(dy, x, y)
      })
      const stopOptionWatch = watchOptionAsMeta((on) => {
        term.options.macOptionIsMeta = on
      })
      const unexpose = exposeForTests(this.kind, term)

      // Pastes go through preparePaste (bracketing, newline normalisation) and the connection's
      // chunked sender; xterm's own handler would send one frame of any size.
      const onPaste = (e: ClipboardEvent): void => {
        const text = e.clipboardData?.getData('text/plain') ?? ''
        e.preventDefault()
        e.stopPropagation()
        this.paste(text)
      }
      el.addEventListener('paste', onPaste, true)
      // Text a keyboard inserts in one piece (a phone keyboard's clipboard strip) is a paste in
      // all but name: xterm would send it as typed, line ends and control characters included.
      // Typing inserts one character at a time and an IME commits through composition events;
      // neither is touched.
      const onBeforeInput = (e: InputEvent): void => {
        if (e.isComposing || !isInsertedClip(e.inputType, e.data)) return
        e.preventDefault()
        e.stopPropagation()
        this.paste(e.data ?? '')
      }
      el.addEventListener('beforeinput', onBeforeInput, true)

      let frame = 0
      const refit = (): void => {
        frame = 0
        // A hidden pane (display: none) measures 0×0: fitting it would shrink the terminal to
        // its minimum and send that size to the server.
        if (el.clientWidth === 0 || el.clientHeight === 0) return
        const dims = fit.proposeDimensions()
        if (!dims || !Number.isFinite(dims.cols) || !Number.isFinite(dims.rows)) return
        const cols = Math.max(2, dims.cols)
        const rows = Math.max(1, dims.rows)
        if (cols === term.cols && rows === term.rows) return
        // The agent tab shows tmux in the normal screen (so what scrolls off lands in the
        // scrollback): xterm's reflow would push the rows on screen into the scrollback and
        // tmux then redraws them all, so every resize repeated them. Clearing the screen first
        // (after the output already queued) leaves reflow nothing to push; tmux's redraw after
        // the resize paints it again. Only while connected: otherwise nothing would repaint.
        if (this.kind === 'agent' && this.connection.isOpen && !this.#inAlternate(term))
          term.write('\x1b[H\x1b[2J', () => {
            term.resize(cols, rows)
          })
        else term.resize(cols, rows)
      }
      const observer = new ResizeObserver(() => {
        if (frame === 0) frame = requestAnimationFrame(refit)
      })
      observer.observe(el)
      refit()
      this.size = { cols: term.cols, rows: term.rows }

      this.#attached = true
      if (this.#opts.autofocus) term.focus()
      if (this.#running) this.connection.connect()

      return () => {
        this.#attached = false
        if (frame !== 0) cancelAnimationFrame(frame)
        observer.disconnect()
        el.removeEventListener('paste', onPaste, true)
        el.removeEventListener('beforeinput', onBeforeInput, true)
        dark.removeEventListener('change', onTheme)
        stopSwipes()
        stopOptionWatch()
        unexpose()
        clipboardQueries.dispose()
        for (const d of disposables) d.dispose()
        this.connection.dispose()
        webgl?.dispose()
        term.dispose()
        this.#term = null
        this.#search = null
      }
    })

  #onKey(e: KeyboardEvent): boolean {
    const ctrl = e.ctrlKey && !e.metaKey && !e.altKey
    const key = e.key.toLowerCase()
    // Shift+Enter inserts a newline in the agents instead of submitting (keys.ts says why ESC CR).
    if (isShiftEnter(e)) {
      if (e.type === 'keydown') this.#term?.input(SHIFT_ENTER_SEQUENCE)
      e.preventDefault()
      return false
    }
    if (ctrl && e.shiftKey && key === 'c') {
      if (e.type === 'keydown') void this.copySelection()
      e.preventDefault()
      return false
    }
    if (ctrl && e.shiftKey && key === 'm') {
      if (e.type === 'keydown') this.#opts.onLeave?.()
      e.preventDefault()
      return false
    }
    if (ctrl && e.shiftKey && key === 'f') {
      if (e.type === 'keydown') this.#opts.onSearchRequest?.()
      e.preventDefault()
      return false
    }
    // Let the browser turn Ctrl+V / Ctrl+Shift+V into a paste event (handled above) instead of
    // xterm sending ^V. Cmd+V on a Mac already does.
    if (ctrl && key === 'v' && !isMac) return false
    // Ctrl+C copies when text is selected, like most terminal apps; otherwise it is ^C.
    if (ctrl && !e.shiftKey && key === 'c' && this.#term?.hasSelection()) {
      if (e.type === 'keydown') {
        void this.copySelection()
        this.#term.clearSelection()
      }
      e.preventDefault()
      return false
    }
    return true
  }

  /**
   * Sends text as a paste: the one path of every paste (keyboard, context menu, middle click,
   * the Paste button). Sanitised and bracketed when the application asked for it
   * (shared/terminal/paste.ts), sent in chunks.
   */
  paste(text: string): void {
    if (!text || !this.#term) return
    this.connection.input(preparePaste(text, this.#term.modes.bracketedPasteMode))
    this.#term.scrollToBottom()
  }

  async pasteFromClipboard(): Promise<void> {
    const text = await navigator.clipboard.readText()
    this.paste(text)
    this.focus()
  }

  async copySelection(): Promise<boolean> {
    const text = this.#term?.getSelection() ?? ''
    if (!text) return false
    return writeClipboard(text)
  }

  /** Sends raw keys (the phone key bar). */
  sendKeys(seq: string): void {
    this.connection.input(seq)
    this.focus()
  }

  /**
   * Scrolls a page up (-1) or down (1), as PgUp/PgDn on the key bar: see keys.ts `pageAction`
   * for how, depending on what the terminal shows.
   */
  page(direction: -1 | 1): void {
    const term = this.#term
    if (!term) return
    const action = pageAction(
      {
        mouseTracking: term.modes.mouseTrackingMode,
        buffer: this.#inAlternate(term) ? 'alternate' : 'normal',
        rows: term.rows,
      },
      direction,
    )
    if (action.kind === 'scroll') term.scrollPages(action.pages)
    else if (action.kind === 'keys') this.connection.input(action.seq)
    else {
      const screen = this.#screen(term)
      if (screen) {
        const box = screen.getBoundingClientRect()
        const x = box.left + box.width / 2
        const y = box.top + box.height / 2
        for (let i = 0; i < action.ticks; i++) {
          this.#wheel(screen, action.direction, WheelEvent.DOM_DELTA_LINE, x, y)
        }
      }
    }
  }

  /**
   * A finger moved `dy` pixels over the terminal: the application's wheel when it reports one
   * (tmux: copy mode), the browser's scrollback in the normal buffer, else xterm's own wheel
   * handling (arrow keys in less or vim; never for the agent, see the wheel handler).
   */
  #swipe(dy: number, x: number, y: number): void {
    const term = this.#term
    const screen = term ? this.#screen(term) : null
    if (!term || !screen) return
    if (this.#reportsWheel(term) || this.#inAlternate(term)) {
      this.#wheel(screen, dy, WheelEvent.DOM_DELTA_PIXEL, x, y)
      return
    }
    const cell = screen.clientHeight / term.rows
    if (!(cell > 0)) return
    this.#swipeRest += dy / cell
    const lines = Math.trunc(this.#swipeRest)
    if (lines !== 0) {
      this.#swipeRest -= lines
      term.scrollLines(lines)
    }
  }

  /** A wheel event through xterm's own handling (mouse reports with the right encoding). */
  #wheel(screen: HTMLElement, deltaY: number, deltaMode: number, x: number, y: number): void {
    screen.dispatchEvent(
      new WheelEvent('wheel', {
        deltaY,
        deltaMode,
        clientX: x,
        clientY: y,
        bubbles: true,
        cancelable: true,
      }),
    )
  }

  #screen(term: Terminal): HTMLElement | null {
    return term.element?.querySelector<HTMLElement>('.xterm-screen') ?? null
  }

  #reportsWheel(term: Terminal): boolean {
    const mode = term.modes.mouseTrackingMode
    return mode !== 'none' && mode !== 'x10'
  }

  #inAlternate(term: Terminal): boolean {
    return term.buffer.active.type === 'alternate'
  }

  focus(): void {
    this.#term?.focus()
  }

  findNext(query: string, caseSensitive = false): boolean {
    return this.#search?.findNext(query, { caseSensitive, incremental: false }) ?? false
  }

  findIncremental(query: string, caseSensitive = false): boolean {
    return this.#search?.findNext(query, { caseSensitive, incremental: true }) ?? false
  }

  findPrevious(query: string, caseSensitive = false): boolean {
    return this.#search?.findPrevious(query, { caseSensitive }) ?? false
  }

  clearSearch(): void {
    this.#search?.clearActiveDecoration()
    this.#term?.clearSelection()
  }
}
