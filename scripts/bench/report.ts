// The machine the run was on, and the two outputs: bench/results.json and bench/results.md.
import { cpus, release, totalmem } from 'node:os'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { execa } from 'execa'
import type { Figure } from './context.ts'

export interface Machine {
  cpus: number
  cpuModel: string
  memoryGiB: number
  kernel: string
  os: string
  node: string
  incusClient: string
  incusServer: string
  tmux: string
  loadAverageAtStart: string
  /** The storage driver of the sessions' pool (`GET /api/health` `incus.storage_driver`). */
  storageDriver?: string
}

async function osName(): Promise<string> {
  try {
    const text = await readFile('/etc/os-release', 'utf8')
    return /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(text)?.[1] ?? 'unknown'
  } catch {
    return 'unknown'
  }
}

export async function machineInfo(): Promise<Machine> {
  const v = await execa('incus', ['version'], { reject: false })
  const load = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    kernel: release(),
    os: await osName(),
    node: process.version,
    incusClient: /Client version: (\S+)/.exec(v.stdout)?.[1] ?? 'unknown',
    incusServer: /Server version: (\S+)/.exec(v.stdout)?.[1] ?? 'unknown',
    tmux: 'unknown',
    loadAverageAtStart: load,
  }
}

export interface Results {
  date: string
  durationSeconds: number
  machine: Machine
  figures: Figure[]
  pending: string[]
  errors: string[]
}

function fmt(value: number, unit: string): string {
  if (!Number.isFinite(value)) return '—'
  return `${value} ${unit}`
}

function ratioText(f: Figure): string {
  if (f.ratio === undefined || !Number.isFinite(f.ratio)) return ''
  if (f.ratioKind === 'delta') return `${f.ratio >= 0 ? '+' : ''}${f.ratio} ${f.unit}`
  return `${f.ratio}×`
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ')
}

export function markdown(r: Results): string {
  const m = r.machine
  const lines = [
    '# clincus benchmarks',
    '',
    `Run on ${r.date} in ${Math.round(r.durationSeconds)} s by \`npm run bench\`. Machine: ${m.cpus} cores (${m.cpuModel}), ${m.memoryGiB} GiB, ${m.os}, kernel ${m.kernel}, Node ${m.node}, Incus ${m.incusServer} (client ${m.incusClient}), ${m.tmux} in the session image${m.storageDriver ? `, sessions on a \`${m.storageDriver}\` storage pool` : ''}; load average at start ${m.loadAverageAtStart}.`,
    '',
    'Every baseline was measured in the same run on the same machine. Ratios are clincus ÷ baseline (×) or clincus − baseline (+ ms).',
    '',
    '| figure | clincus | baseline (same run) | ratio | goal | met |',
    '| --- | --- | --- | --- | --- | --- |',
  ]
  let section = ''
  const notes: string[] = []
  for (const f of r.figures) {
    if (f.section !== section) {
      section = f.section
      lines.push(`| **${cell(section)}** | | | | | |`)
    }
    const base = f.baseline ? `${fmt(f.baseline.value, f.baseline.unit)} (${f.baseline.name})` : '—'
    const met = f.met === undefined ? '—' : f.met ? 'met' : '**missed**'
    let name = f.name
    if (f.note) {
      notes.push(f.note)
      name += ` [${notes.length}]`
    }
    lines.push(
      `| ${cell(name)} | ${cell(fmt(f.value, f.unit))} | ${cell(base)} | ${cell(ratioText(f))} | ${cell(f.goal ?? '—')} | ${met} |`,
    )
  }
  if (notes.length > 0) {
    lines.push('', ...notes.map((n, i) => `${i + 1}. ${n}`))
  }
  if (r.pending.length > 0) {
    lines.push('', '**Pending:**', '', ...r.pending.map((p) => `- ${p}`))
  }
  if (r.errors.length > 0) {
    lines.push('', '**Errors:**', '', ...r.errors.map((e) => `- ${e}`))
  }
  lines.push('')
  return lines.join('\n')
}

/** Writes `<base>.json` and `<base>.md` into `dir`. */
export async function writeResults(dir: string, r: Results, base = 'results'): Promise<void> {
  await writeFile(join(dir, `${base}.json`), `${JSON.stringify(r, null, 2)}\n`)
  await writeFile(join(dir, `${base}.md`), markdown(r))
}
