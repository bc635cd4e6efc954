// Surgical edits of a hand-written TOML file: only the lines of the keys we change are rewritten,
// so the user's comments, ordering and other keys survive (smol-toml's stringify would drop them).
import { parse } from 'smol-toml'
import { isPlainObject } from './merge.ts'

export interface DashboardPatch {
  port?: number
  workspace_roots?: string[]
}

const TABLE_HEADER = /^\s*\[\s*([A-Za-z0-9_."' -]+?)\s*\]\s*(#.*)?$/
const ARRAY_TABLE_HEADER = /^\s*\[\[/

function tomlString(s: string): string {
  // JSON string escapes are valid TOML basic-string escapes.
  return JSON.stringify(s)
}

function formatArray(values: string[], multiline: boolean, indent: string): string {
  if (values.length === 0) return '[]'
  if (!multiline) return `[${values.map(tomlString).join(', ')}]`
  return `[\n${values.map((v) => `${indent}  ${tomlString(v)},`).join('\n')}\n${indent}]`
}

/** Index of the line where a value that starts on `start` ends (brackets balanced, strings skipped). */
function valueEnd(lines: string[], start: number, from: number): number {
  let depth = 0
  for (let i = start; i < lines.length; i++) {
    const line = lines[i] ?? ''
    let j = i === start ? from : 0
    while (j < line.length) {
      const ch = line[j]
      if (ch === '#') break
      if (ch === '"' || ch === "'") {
        const triple = line.startsWith(ch.repeat(3), j)
        if (triple) return -1 // multi-line strings in this key: leave the edit to a human
        j++
        while (j < line.length && line[j] !== ch) {
          if (ch === '"' && line[j] === '\\') j++
          j++
        }
      } else if (ch === '[') depth++
      else if (ch === ']') {
        depth--
        if (depth === 0) return i
      }
      j++
    }
  }
  return -1
}

interface Section {
  header: number
  end: number // exclusive
}

function findSection(lines: string[], name: string): Section | null {
  for (let i = 0; i < lines.length; i++) {
    const m = TABLE_HEADER.exec(lines[i] ?? '')
    if (!m || ARRAY_TABLE_HEADER.test(lines[i] ?? '')) continue
    if (m[1]?.replaceAll(/\s/g, '') !== name) continue
    let end = i + 1
    while (
      end < lines.length &&
      !TABLE_HEADER.test(lines[end] ?? '') &&
      !ARRAY_TABLE_HEADER.test(lines[end] ?? '')
    )
      end++
    return { header: i, end }
  }
  return null
}

function lastContentLine(lines: string[], section: Section): number {
  let last = section.header
  for (let i = section.header + 1; i < section.end; i++) {
    const t = (lines[i] ?? '').trim()
    if (t !== '' && !t.startsWith('#')) last = i
  }
  return last
}

function setKey(
  lines: string[],
  section: Section,
  key: string,
  render: (multiline: boolean, indent: string) => string,
): void {
  const keyRe = new RegExp(`^(\\s*)${key}\\s*=\\s*`)
  for (let i = section.header + 1; i < section.end; i++) {
    const line = lines[i] ?? ''
    const m = keyRe.exec(line)
    if (!m) continue
    const indent = m[1] ?? ''
    const valueStart = m[0].length
    const rest = line.slice(valueStart)
    if (rest.startsWith('[')) {
      const end = valueEnd(lines, i, valueStart)
      if (end < 0) throw new Error(`cannot safely rewrite "${key}"`)
      const endLine = lines[end] ?? ''
      const closing = endLine.lastIndexOf(
        ']',
        endLine.includes('#') ? endLine.indexOf('#') : endLine.length,
      )
      const trailing = endLine.slice(closing + 1)
      const multiline = end > i
      lines.splice(i, end - i + 1, `${indent}${key} = ${render(multiline, indent)}${trailing}`)
    } else {
      const vm = /^("(?:[^"\\]|\\.)*"|'[^']*'|[^\s#]+)(.*)$/.exec(rest)
      const trailing = vm?.[2] ?? ''
      lines[i] = `${indent}${key} = ${render(false, indent)}${trailing}`
    }
    return
  }
  const at = lastContentLine(lines, section)
  lines.splice(at + 1, 0, `${key} = ${render(false, '')}`)
}

/** Returns `text` with [dashboard] port / workspace_roots set; verified by re-parsing. */
export function setDashboardKeys(text: string, patch: DashboardPatch): string {
  const eol = text.includes('\r\n') ? '\r\n' : '\n'
  const lines = text === '' ? [] : text.split(/\r?\n/)
  let section = findSection(lines, 'dashboard')
  if (!section) {
    while (lines.length > 0 && (lines.at(-1) ?? '').trim() === '') lines.pop()
    if (lines.length > 0) lines.push('')
    lines.push('[dashboard]')
    section = { header: lines.length - 1, end: lines.length }
    lines.push('')
  }
  if (patch.port !== undefined) {
    const port = patch.port
    setKey(lines, section, 'port', () => String(port))
    section = findSection(lines, 'dashboard') ?? section
  }
  if (patch.workspace_roots !== undefined) {
    const roots = patch.workspace_roots
    setKey(lines, section, 'workspace_roots', (multiline, indent) =>
      formatArray(roots, multiline, indent),
    )
  }
  const out = lines.join(eol)
  verify(out, patch)
  return out.endsWith(eol) || out === '' ? out : out + eol
}

function verify(text: string, patch: DashboardPatch): void {
  const parsed = parse(text)
  const dash = parsed.dashboard
  if (!isPlainObject(dash)) throw new Error('the [dashboard] table could not be updated in place')
  if (patch.port !== undefined && dash.port !== patch.port)
    throw new Error('dashboard.port could not be updated in place')
  if (
    patch.workspace_roots !== undefined &&
    JSON.stringify(dash.workspace_roots) !== JSON.stringify(patch.workspace_roots)
  ) {
    throw new Error('dashboard.workspace_roots could not be updated in place')
  }
}

/**
 * Returns `text` with `[network] allow` set to `values` (issue 12, the dashboard's Allow button);
 * comments and other keys kept, verified by re-parsing.
 */
export function setNetworkAllow(text: string, values: string[]): string {
  const eol = text.includes('\r\n') ? '\r\n' : '\n'
  const lines = text === '' ? [] : text.split(/\r?\n/)
  let section = findSection(lines, 'network')
  if (!section) {
    while (lines.length > 0 && (lines.at(-1) ?? '').trim() === '') lines.pop()
    if (lines.length > 0) lines.push('')
    lines.push('[network]')
    section = { header: lines.length - 1, end: lines.length }
    lines.push('')
  }
  setKey(lines, section, 'allow', (multiline, indent) => formatArray(values, multiline, indent))
  const out = lines.join(eol)
  const net = parse(out).network
  if (!isPlainObject(net) || JSON.stringify(net.allow) !== JSON.stringify(values))
    throw new Error('network.allow could not be updated in place')
  return out.endsWith(eol) || out === '' ? out : out + eol
}
