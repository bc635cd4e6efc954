// `npm test`: provisions what the tests need (Incus, the clincus-test image, Chromium), runs the
// typecheck, lint, format check and every Vitest project, and ends with the plain line CI reads:
// "N passed, N failed[, N skipped]". With CI=true a skipped real-Incus test counts as failed.
import { spawn } from 'node:child_process'
import { mkdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { runSetup } from './setup.ts'

interface VitestJson {
  numPassedTests: number
  numFailedTests: number
  numPendingTests: number
  numTodoTests: number
  testResults: Array<{
    name: string
    assertionResults: Array<{ fullName: string; status: string; failureMessages?: string[] }>
  }>
}

const root = join(import.meta.dirname, '..')
const isCI = process.env.CI === 'true'

function run(
  name: string,
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<number> {
  const started = Date.now()
  console.log(`\n==> ${name}`)
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } })
    child.on('close', (code) => {
      console.log(
        `==> ${name}: ${code === 0 ? 'ok' : `failed (exit ${code})`} (${((Date.now() - started) / 1000).toFixed(1)} s)`,
      )
      resolve(code ?? 1)
    })
  })
}

async function main(): Promise<void> {
  const started = Date.now()
  const setup = await runSetup('test')
  const env: Record<string, string> = {}
  if (setup.incus.ok && setup.testImage) env.CLINCUS_IT_INCUS = '1'
  else
    env.CLINCUS_IT_SKIP_REASON = setup.incus.ok
      ? 'the clincus-test image is not available'
      : `Incus is not available: ${setup.incus.reason}`
  if (setup.chromium?.ok) env.CLINCUS_IT_CHROMIUM = setup.chromium.path

  let passed = 0
  let failed = 0
  let skipped = 0
  const check = async (name: string, cmd: string, args: string[]): Promise<void> => {
    if ((await run(name, cmd, args)) === 0) passed++
    else failed++
  }
  await check('typecheck (tsc)', 'npx', ['tsc', '--noEmit', '-p', 'tsconfig.json'])
  await check('lint (eslint)', 'npx', ['eslint', '--max-warnings', '0', '.'])
  await check('format (prettier --check; npm run format fixes it)', 'npx', [
    'prettier',
    '--check',
    '.',
  ])
  await check('typecheck web (svelte-check)', 'npx', [
    'svelte-check',
    '--tsconfig',
    'web/tsconfig.json',
    '--fail-on-warnings',
  ])
  await check('typecheck browser tests (tsc)', 'npx', [
    'tsc',
    '--noEmit',
    '-p',
    'web/e2e/tsconfig.json',
  ])

  // Two phases: the fast projects in parallel, then everything that drives the shared Incus
  // daemon (and restarts or kills it in the fault tests) one file at a time.
  await mkdir(join(root, 'test-results'), { recursive: true })
  const phases: Array<{ name: string; projects: string[]; extra: string[] }> = [
    { name: 'unit and component tests (vitest)', projects: ['server', 'web'], extra: [] },
    {
      name: 'real-Incus and browser tests (vitest)',
      projects: ['incus', 'e2e'],
      extra: ['--no-file-parallelism'],
    },
  ]
  let incusRan = 0
  const incusSkipped: string[] = []
  for (const [i, phase] of phases.entries()) {
    const out = join(root, 'test-results', `vitest-${i}.json`)
    await rm(out, { force: true })
    const code = await run(
      phase.name,
      'npx',
      [
        'vitest',
        'run',
        ...phase.projects.flatMap((p) => ['--project', p]),
        ...phase.extra,
        '--passWithNoTests',
        '--reporter=default',
        '--reporter=json',
        `--outputFile.json=${out}`,
      ],
      env,
    )
    let report: VitestJson
    try {
      report = JSON.parse(await readFile(out, 'utf8')) as VitestJson
    } catch {
      console.log(`${phase.name}: vitest produced no report`)
      failed++
      continue
    }
    passed += report.numPassedTests
    failed += report.numFailedTests
    skipped += report.numPendingTests + report.numTodoTests
    if (code !== 0 && report.numFailedTests === 0) failed++ // a suite that crashed outside a test
    const live = report.testResults
      .filter((f) => f.name.includes('.incus.test.') || f.name.includes('.e2e.test.'))
      .flatMap((f) => f.assertionResults)
    incusRan += live.filter((a) => a.status === 'passed' || a.status === 'failed').length
    incusSkipped.push(
      ...live
        .filter((a) => a.status === 'skipped' || a.status === 'pending' || a.status === 'todo')
        .map((a) => a.fullName),
    )
  }
  console.log(`\nreal-Incus and browser tests: ${incusRan} ran, ${incusSkipped.length} skipped`)
  if (incusSkipped.length > 0) {
    console.log(`skipped because: ${env.CLINCUS_IT_SKIP_REASON ?? 'see the test output'}`)
    if (isCI) {
      console.log('CI=true: a skipped real-Incus test fails the run')
      failed += incusSkipped.length
      skipped -= incusSkipped.length
    }
  }
  console.log(`\nnpm test finished in ${((Date.now() - started) / 1000).toFixed(0)} s`)
  console.log(`${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`)
  process.exitCode = failed > 0 ? 1 : 0
}

main().catch((err: unknown) => {
  console.error(err)
  console.log('0 passed, 1 failed')
  process.exitCode = 1
})
