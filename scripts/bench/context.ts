// What every benchmark gets: the server under test, the run's names, and a place to put figures.
import type { ServerProcess } from './server-process.ts'

export interface Baseline {
  name: string
  value: number
  unit: string
}

export interface Figure {
  /** Scope item of issue 7, e.g. "1. Terminal throughput". */
  section: string
  name: string
  value: number
  unit: string
  baseline?: Baseline
  /** value ÷ baseline, or value − baseline for overheads (see `ratioKind`). */
  ratio?: number
  ratioKind?: 'times' | 'delta'
  goal?: string
  /** undefined: informational, no goal. */
  met?: boolean
  note?: string
  detail?: Record<string, unknown>
}

export interface BenchContext {
  server: ServerProcess
  repoRoot: string
  /** Every container of this run starts with this (cleanup deletes by it). */
  runId: string
  /** The server's container prefix (`<runId>-`). */
  prefix: string
  home: string
  /** The workspace root configured in the server. */
  root: string
  image: string
  /** Running sessions made through the API, kept for the terminal benchmarks. */
  sessions: string[]
  /** Repetitions of the expensive measurements. */
  reps: number
  record(f: Figure): void
  progress(message: string): void
  /**
   * What a benchmark still has to undo (servers it started, sessions it made): run by the run's
   * cleanup, also on Ctrl-C; a benchmark removes its entry once it has cleaned up itself.
   */
  cleanups: Array<() => Promise<void>>
}

export const SECTIONS = {
  throughput: '1. Terminal throughput',
  latency: '2. Keystroke echo latency',
  listing: '3. Listing',
  creation: '4. Session creation',
  events: '5. Event latency',
  memory: '6. Memory',
  scaling: '7. Scaling',
  egress: '8. Network egress',
  launch: '9. Click to accepting keys (issue 16)',
} as const
