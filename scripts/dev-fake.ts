// `tsx scripts/dev-fake.ts [--port N] [--delay MS]`: the real server over the in-memory
// FakeIncusDriver, for working on the dashboard without Incus. A throwaway HOME holds a workspace
// root with a few projects and two existing sessions; every Incus call takes `--delay` ms so launch
// progress is visible. Terminals are local stand-ins: the agent tab runs a fake agent (a line in,
// `<line>-BACK` out, like the test image's), the shell tab a plain bash in the throwaway HOME.
// Token auth is on, as in `npm start`: open the printed link. Serves dist/web (run
// `npx vite build`, or `npx vite` with CLINCUS_DEV_PORT=N for hot reload against this server).
import { mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import { pino } from 'pino'
import { buildApp } from '../server/app.ts'
import { configLocations } from '../server/config/paths.ts'
import { ConfigStore } from '../server/config/store.ts'
import { HistoryStore } from '../server/history/store.ts'
import { FakeIncusDriver } from '../server/incus/fake-driver.ts'
import { Listener } from '../server/listener.ts'
import { loggerOptions } from '../server/security/log-redaction.ts'
import { nodePtySpawner, type PtySpawner } from '../server/pty/spawner.ts'
import { LABEL } from '../server/sessions/registry.ts'
import { containerName, workspaceHash } from '../server/sessions/naming.ts'

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.CLINCUS_DEV_PORT ?? '3000' },
    delay: { type: 'string', default: '120' },
  },
})
const port = Number(values.port)
const delay = Number(values.delay)
const prefix = 'clincus-'

const home = await realpath(await mkdtemp(join(tmpdir(), 'clincus-dev-')))
const root = join(home, 'projects')
const projects: Array<[string, string[]]> = [
  ['api-server', ['.git', 'go.mod']],
  ['web-app', ['.git', 'package.json', '.clincus.toml']],
  ['infra', ['Makefile']],
  ['data-pipeline', ['pyproject.toml']],
]
for (const [name, markers] of projects) {
  const dir = join(root, name)
  await mkdir(dir, { recursive: true })
  for (const m of markers) {
    if (m === '.git') await mkdir(join(dir, '.git', 'hooks'), { recursive: true })
    else await writeFile(join(dir, m), '')
  }
}
await mkdir(join(home, '.config', 'clincus'), { recursive: true })
await writeFile(
  join(home, '.config', 'clincus', 'config.toml'),
  `[dashboard]\nworkspace_roots = ["${root}"]\n\n[profiles.heavy]\npersistent = true\n`,
)

const driver = new FakeIncusDriver()
driver.gate = () => new Promise((r) => setTimeout(r, delay))
const seed = (project: string, slot: number, status: 'Running' | 'Stopped', tool: string): void => {
  const workspace = join(root, project)
  driver.addInstance(containerName(prefix, workspaceHash(workspace), slot), {
    status,
    config: {
      [LABEL.managed]: 'true',
      [LABEL.ready]: 'true',
      [LABEL.workspace]: workspace,
      [LABEL.tool]: tool,
      [LABEL.persistent]: String(status === 'Stopped'),
      [LABEL.created]: new Date(Date.now() - slot * 47 * 60_000).toISOString(),
    },
  })
}
seed('web-app', 1, 'Running', 'claude')
seed('api-server', 1, 'Stopped', 'opencode')

const FAKE_AGENT = `echo "fake agent ready (dev-fake)"
while IFS= read -r line; do printf '%s-BACK\\n' "$line"; done`
// The server asks for `incus exec … tmux attach` or `… bash --login`; run a local stand-in.
const pty: PtySpawner = {
  spawn: (_file, args, opts) =>
    args.includes('tmux')
      ? nodePtySpawner.spawn('bash', ['--norc', '--noprofile', '-c', FAKE_AGENT], opts)
      : nodePtySpawner.spawn(
          'env',
          [
            '-i',
            `HOME=${home}`,
            'TERM=xterm-256color',
            'PS1=dev-fake$ ',
            'bash',
            '--norc',
            '--noprofile',
            '-i',
          ],
          opts,
        ),
}
const token = randomBytes(24).toString('base64url')

const env = { HOME: home, CLINCUS_SYSTEM_CONFIG: join(home, 'etc-clincus.toml') }
const config = await ConfigStore.open(configLocations(env, home), env, home)
const { app, security } = await buildApp({
  driver,
  config,
  history: new HistoryStore(join(home, '.clincus', 'history.jsonl')),
  log: pino(loggerOptions(process.env.LOG_LEVEL ?? 'warn')),
  prefix,
  home,
  version: '0.0.0-dev-fake',
  webRoot: resolve(import.meta.dirname, '..', 'dist', 'web'),
  readyTimeoutMs: 5000,
  pty,
  auth: { mode: 'token', token },
})
await app.ready()
const listener = new Listener(app.server)
const actual = await listener.listen(port, '127.0.0.1')
console.log(`clincus (fake Incus) on http://127.0.0.1:${actual}/  HOME=${home}`)
console.log(
  `sign in: http://127.0.0.1:${actual}/?code=${security.credentials.issueCode().code}  (once, 10 min; token: ${token})`,
)

let closing = false
const close = async (): Promise<void> => {
  if (closing) return
  closing = true
  await listener.close()
  await app.close()
  listener.destroySockets()
  await rm(home, { recursive: true, force: true })
  process.exit(0)
}
process.on('SIGINT', () => void close())
process.on('SIGTERM', () => void close())
