// Command-line parsing for the `clincus` entry point (pure, so it is unit-tested).
export type Command =
  | { kind: 'serve'; port?: number; host: string; open: boolean; build: boolean }
  | { kind: 'build'; image: 'clincus' | 'clincus-test'; update: boolean }
  | { kind: 'help' }
  | { kind: 'version' }

export class UsageError extends Error {}

export const USAGE = `usage:
  clincus serve [--port N] [--host ADDR] [--open] [--no-build]
  clincus build [--test] [--update]
  clincus --version`

function portValue(raw: string | undefined): number {
  if (raw === undefined || !/^\d+$/.test(raw) || Number(raw) > 65535) {
    throw new UsageError(
      `--port needs a number from 0 (any free port) to 65535, got ${raw === undefined ? 'nothing' : JSON.stringify(raw)}`,
    )
  }
  return Number(raw)
}

export function parseArgs(argv: readonly string[]): Command {
  const [cmd = 'serve', ...rest] = argv
  if (cmd === '--help' || cmd === '-h' || cmd === 'help') return { kind: 'help' }
  if (cmd === '--version' || cmd === '-v' || cmd === 'version') return { kind: 'version' }
  if (cmd === 'build') {
    const unknown = rest.find((a) => a !== '--test' && a !== '--update')
    if (unknown) throw new UsageError(`unknown option for build: ${unknown}`)
    return {
      kind: 'build',
      image: rest.includes('--test') ? 'clincus-test' : 'clincus',
      // Newest agent versions; otherwise the image's current ones are kept.
      update: rest.includes('--update'),
    }
  }
  if (cmd !== 'serve') throw new UsageError(`unknown command: ${cmd}`)
  const out: { kind: 'serve'; port?: number; host: string; open: boolean; build: boolean } = {
    kind: 'serve',
    host: '127.0.0.1',
    open: false,
    build: true,
  }
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i] ?? ''
    const [flag, inline] =
      arg.startsWith('--') && arg.includes('=')
        ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)]
        : [arg, undefined]
    switch (flag) {
      case '--port':
        out.port = portValue(inline ?? rest[++i])
        break
      case '--host': {
        const host = inline ?? rest[++i]
        if (!host) throw new UsageError('--host needs an address')
        out.host = host
        break
      }
      case '--open':
        out.open = true
        break
      case '--no-build':
        out.build = false
        break
      default:
        throw new UsageError(`unknown option: ${arg}`)
    }
  }
  return out
}
