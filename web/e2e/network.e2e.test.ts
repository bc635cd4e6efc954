// Issue 12 acceptance (browser): the Network panel lists a refused destination; its Allow button
// writes the entry into the user's config file (comments intact) and a retried curl succeeds.
// Real server, live Incus daemon, Debian's Chromium. The upstream is a server of this test on
// 127.0.0.1:<random port>: loopback is refused unless that exact ip:port is allowed, so Allow
// must offer (and write) `127.0.0.1:<port>`. Like the egress live test, it needs a test image
// with curl and the issue 12 init (the harness's TEST_IMAGE).
import { createServer, type Server } from 'node:http'
import { mkdir, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { afterAll, beforeAll, expect, it } from 'vitest'
import {
  describeIncus,
  execAsCode,
  requestJson,
  startLiveServer,
  TEST_IMAGE,
  type LiveServer,
} from '../../server/test/incus-harness.ts'
import { buildSpa, launchChromium, newContext, PageProblems, repo } from './support.ts'

const shots = join(repo, 'test-results', 'e2e')
const COMMENT = '# network: keep this comment (issue 12 e2e)'

let home: string
let server: LiveServer
let upstream: Server
let upstreamPort = 0
let browser: Browser
let context: BrowserContext
let page: Page
let sessionId = ''
const problems = new PageProblems()

/** curl from inside the session as the code user, through the session's proxy variables. */
async function curlInside(url: string): Promise<string> {
  // NO_PROXY lists 127.0.0.1 (the container's own loopback); this request is meant for the
  // host's upstream, so it names the proxy explicitly (as server/network/egress.incus.test.ts).
  const r = await execAsCode(
    sessionId,
    `curl -sS --noproxy '' -x "$HTTPS_PROXY" -o /dev/null -w 'code=%{http_code}' --max-time 10 '${url}'`,
  )
  return `${r.stdout}\n${r.stderr}`.trim()
}

describeIncus('the Network panel in Chromium', () => {
  beforeAll(async () => {
    home = await realpath(await mkdtemp(join(tmpdir(), 'clincus-e2e-net-')))
    const webRoot = join(home, 'web')
    await buildSpa(webRoot)
    upstream = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end('upstream-ok\n')
    })
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
    const addr = upstream.address()
    upstreamPort = typeof addr === 'object' && addr ? addr.port : 0
    const root = join(home, 'projects')
    server = await startLiveServer({
      home,
      webRoot,
      configText: `${COMMENT}\n[network]\nmode = "allowlist"\n\n[defaults]\nimage = "${TEST_IMAGE}"\n\n[dashboard]\nworkspace_roots = ["${root}"]\n`,
    })
    const workspace = await server.project('net-demo')
    const res = await requestJson(server.url, 'POST', '/api/sessions', { workspace })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    sessionId = (res.body as { id: string }).id
    await mkdir(shots, { recursive: true })
    browser = await launchChromium()
    context = await newContext(browser, { width: 1280, height: 800 })
    page = problems.watch(await context.newPage(), 'desktop')
  })

  afterAll(async () => {
    await browser.close().catch(() => undefined)
    await server.close()
    await new Promise<void>((resolve) => {
      upstream.close(() => {
        resolve()
      })
    })
    await rm(home, { recursive: true, force: true })
  })

  it('lists a refused destination first, and flags it on the session card', async () => {
    const target = `http://127.0.0.1:${String(upstreamPort)}/`
    expect(await curlInside(target)).toContain('code=403')
    await page.goto(`${server.url}/sessions/${encodeURIComponent(sessionId)}`)
    await page.getByRole('tab', { name: /^Network/ }).click()
    const first = page.getByTestId('destination').first()
    await expect.poll(() => first.getAttribute('data-status'), { timeout: 10_000 }).toBe('refused')
    expect(await first.innerText()).toContain('127.0.0.1')
    await page.getByTestId('refused-badge').waitFor()
    await page.screenshot({ path: join(shots, 'network-01-refused.png') })
  })

  it('Allow writes ip:port into the config file with its comments, and a retry gets through', async () => {
    const entry = `127.0.0.1:${String(upstreamPort)}`
    await page.getByRole('button', { name: `Allow ${entry}` }).click()
    await page
      .getByRole('status')
      .filter({ hasText: `Added ${entry}` })
      .waitFor()
    const text = await readFile(server.configFile, 'utf8')
    expect(text).toContain(COMMENT)
    expect(text).toMatch(new RegExp(`allow\\s*=\\s*\\[[^\\]]*"${entry.replace(/\./g, '\\.')}"`))
    // The reload reaches the running session; the panel shows the entry in the effective list.
    await page.getByText(/Allowed destinations/).click()
    await page.getByRole('listitem').filter({ hasText: entry }).waitFor({ timeout: 10_000 })
    await expect
      .poll(() => curlInside(`http://${entry}/`), { timeout: 10_000, interval: 250 })
      .toContain('code=200')
    // The retry is listed as allowed, ahead of the old refusal, which now says so.
    const statuses = () =>
      page.getByTestId('destination').evaluateAll((rows) => rows.map((r) => r.dataset.status))
    await expect.poll(statuses, { timeout: 10_000 }).toEqual(['allowed', 'retried'])
    await page.screenshot({ path: join(shots, 'network-02-allowed.png') })
    await writeFile(join(shots, 'network-config.toml'), text)
    expect(problems.list).toEqual([])
  })
})
