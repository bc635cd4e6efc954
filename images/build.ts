// Builds the `clincus` (real tools) and `clincus-test` (fake tool) images without any image server
// and without root: one `mmdebstrap --mode=unshare` run writes the rootfs tarball (bootstrap.ts),
// the overlay (init, Node, agents, extras) is staged by the builder as itself, then `incus image
// import` and an atomic alias move, so the previous image keeps serving launches until the new one
// is published (spec §5.4). Root and an `incus-admin` member run exactly the same steps.
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { homedir, userInfo } from 'node:os'
import { join } from 'node:path'
import { runSteps, StepFailure, type Step } from '../shared/steps.ts'
import { repoRoot } from '../server/paths.ts'
import { renderTmuxConf } from '../server/sessions/tmux.ts'
import { aptInstall } from '../provision/apt.ts'
import { configuredArchive } from '../provision/apt-sources.ts'
import { isRoot } from '../provision/host.ts'
import { silentReporter, type SetupReporter } from '../provision/reporter.ts'
import {
  IMAGE_TOOL_PACKAGES,
  imageToolsCommand,
  missingImageTools,
} from '../provision/image-tools.ts'
import { hasUsableRange } from '../provision/subid.ts'
import { bootstrap, configureScript, hostExtraCertificates, hostTimeZone } from './bootstrap.ts'
import {
  deleteAlias,
  deleteImage,
  describeAlias,
  describeImage,
  importImage,
  retargetAlias,
  tryDelete,
} from './image-store.ts'
import { hostNpmRoot, installedVersion, installGlobal, stageNode } from './node-tools.ts'
import {
  agentSpecs,
  BASE_PACKAGES,
  BUILDER_VERSION,
  FAKE_TOOL_NAMES,
  incusArchitecture,
  INPUT_HASH_PROPERTY,
  inputHash,
  NO_EXTRAS,
  NODE_PIN,
  NODE_VERSION_PROPERTY,
  nodePackage,
  renderMetadataYaml,
  SUITE,
  TEMPLATES,
  TOOL_PACKAGES,
  TOOL_PROPERTY_PREFIX,
  type ImageExtras,
  type ImageKind,
} from './recipe.ts'
import {
  cacheDir,
  installFakeTool,
  makeOverlay,
  makeWorkDir,
  packMetadata,
  packOverlay,
  removeWorkDir,
} from './rootfs.ts'

export { imageExists } from './image-store.ts'
export type { ImageKind } from './recipe.ts'

export const TEST_IMAGE_ALIAS = 'clincus-test'

export interface BuildProgress {
  step: string
  /** 0..1, by the rough share of build time each step takes. */
  progress: number
}

export interface BuildImageOptions {
  /** Incus project the image is imported into. */
  project: string
  onProgress: (progress: BuildProgress) => void
  signal?: AbortSignal
  /** Times each step (setup prints them); silent by default. */
  reporter?: SetupReporter
  /** Defaults to the kind's own name. */
  alias?: string
  /** Defaults to the machine's configured apt source for bookworm. */
  archiveUri?: string
  /** The user's additions (`[image]`); none by default. */
  extras?: ImageExtras
  /**
   * Install the newest agent versions. Otherwise the versions the alias's current image records
   * are kept (an image is only as new as its inputs), the newest when there is none.
   */
  update?: boolean
}

export interface BuiltImage {
  alias: string
  fingerprint: string
  inputHash: string
}

/** The builder's steps: the one step shape and loop of shared/steps.ts (as session creation). */
type BuildStep = Step<BuildStepId>
type BuildStepId =
  | 'image-tools'
  | 'overlay'
  | 'fake-tool'
  | 'node'
  | 'npm'
  | 'bootstrap'
  | 'metadata'
  | 'import'
  | 'publish'

async function readAsset(name: string): Promise<string> {
  return readFile(join(repoRoot, 'images', name), 'utf8')
}

/**
 * `[image] setup`: a path (absolute or `~/`, one line) names a script file of the user's; any
 * other text is the script itself. The script's text is what the image hash covers.
 */
export async function resolveSetup(setup: string, home = homedir()): Promise<string> {
  const line = setup.trim()
  if (line === '' || line.includes('\n')) return setup
  if (line.startsWith('/')) return readFile(line, 'utf8')
  if (line.startsWith('~/')) return readFile(join(home, line.slice(2)), 'utf8')
  return setup
}

export interface ImageInputs {
  init: string
  /** /etc/tmux.conf (server/sessions/tmux.ts). */
  tmuxConf: string
  fakeTool: string | undefined
  timeZone: string
  /** The host's extra CA certificates, relative path → PEM (hostExtraCertificates). */
  certificates: Readonly<Record<string, string>>
  packages: readonly string[]
  npm: readonly string[]
  setup: string
  hash: string
}

/** Everything a build consumes, hashed for staleness checks (agent versions excepted). */
export async function imageInputs(
  kind: ImageKind,
  extras: ImageExtras = NO_EXTRAS,
): Promise<ImageInputs> {
  const init = await readAsset('init.sh')
  const fakeTool = kind === 'clincus-test' ? await readAsset('fake-tool.sh') : undefined
  const timeZone = await hostTimeZone()
  const certificates = await hostExtraCertificates()
  const setup = await resolveSetup(extras.setup)
  // The test image has no Node: extra npm packages apply to the real image only.
  const npm = kind === 'clincus' ? extras.npm : []
  const packages = [...new Set([...BASE_PACKAGES, ...extras.packages])]
  const tmuxConf = renderTmuxConf()
  const files: Record<string, string> = { 'init.sh': init, 'tmux.conf': tmuxConf }
  for (const { rule, content } of Object.values(TEMPLATES)) {
    files[`templates/${rule.template}`] = content
  }
  for (const [rel, pem] of Object.entries(certificates)) files[`ca-certificates/${rel}`] = pem
  const settings: Record<string, string | readonly string[]> = { timeZone, setup, npm }
  if (fakeTool !== undefined) {
    files['fake-tool.sh'] = fakeTool
  } else {
    settings.tools = TOOL_PACKAGES.map((tool) => tool.npm)
    settings.node = `${NODE_PIN.version} npm ${NODE_PIN.npm}`
  }
  const hash = inputHash({
    kind,
    builderVersion: BUILDER_VERSION,
    suite: SUITE,
    packages,
    files,
    settings,
  })
  return { init, tmuxConf, fakeTool, timeZone, certificates, packages, npm, setup, hash }
}

export async function testImageInputHash(): Promise<string> {
  return (await imageInputs('clincus-test')).hash
}

/**
 * What this builder lacks, as one message naming the exact command; undefined when it can build.
 * mmdebstrap's unshare mode maps the tree onto the builder's subordinate ids via newuidmap.
 */
export function rootlessProblem(opts: {
  user: string
  root: boolean
  subuid: string
  subgid: string
  /** Packages whose programs are missing (missingImageTools); root installs them itself. */
  missing: readonly string[]
}): string | undefined {
  const { missing } = opts
  if (missing.length > 0 && !opts.root) {
    return `building images needs ${missing.join(' and ')}: run \`${imageToolsCommand(missing)}\` once`
  }
  if (!hasUsableRange(opts.subuid, opts.user) || !hasUsableRange(opts.subgid, opts.user)) {
    return `building images needs subordinate ids for ${opts.user}: run \`sudo usermod --add-subuids 3000000000-3000065535 --add-subgids 3000000000-3000065535 ${opts.user}\` once`
  }
  return undefined
}

export async function buildImage(kind: ImageKind, opts: BuildImageOptions): Promise<BuiltImage> {
  opts.signal?.throwIfAborted()
  const reporter = opts.reporter ?? silentReporter
  const alias = opts.alias ?? kind
  const { project, signal } = opts
  const signalOpt = signal ? { signal } : {}
  const root = isRoot()
  const user = userInfo().username
  const problem = rootlessProblem({
    user,
    root,
    missing: await missingImageTools(),
    subuid: await readFile('/etc/subuid', 'utf8').catch(() => ''),
    subgid: await readFile('/etc/subgid', 'utf8').catch(() => ''),
  })
  if (problem !== undefined) throw new Error(problem)
  const inputs = await imageInputs(kind, opts.extras)
  const archiveUri = opts.archiveUri ?? (await configuredArchive(SUITE)).uri
  const architecture = incusArchitecture(process.arch)
  const needTools = (await missingImageTools()).length > 0
  const npmRoot = kind === 'clincus' ? await hostNpmRoot() : undefined
  if (kind === 'clincus' && npmRoot === undefined) {
    throw new Error('building the clincus image needs npm on the host (to reach the registry)')
  }
  const current = opts.update ? undefined : await describeAlias(alias, project)
  const toolSpecs = agentSpecs(current?.properties, opts.update === true)

  const cache = cacheDir()
  if (/\s/.test(cache)) throw new Error(`the build cache path has white space: ${cache}`)
  const work = await makeWorkDir(cache)
  const overlayDir = join(work, 'overlay')
  const usrLocal = join(overlayDir, 'usr', 'local')
  const files = {
    meta: join(work, 'meta.tar.gz'),
    rootfs: join(work, 'rootfs.tar'),
    overlay: join(work, 'overlay.tar'),
    configure: join(work, 'configure.sh'),
    setup: join(work, 'setup.sh'),
  }
  const hostNpm = {
    nodePath: process.execPath,
    npmRoot: npmRoot ?? '',
    cacheDir: join(cache, 'npm'),
  }
  const buildAlias = `${alias}-building-${process.pid}-${Date.now()}`
  // Written by the steps below (closures), read by the cleanup path.
  const state: { imported?: string; published: boolean } = { published: false }
  const properties: Record<string, string> = {
    description: `clincus ${kind === 'clincus' ? 'agent' : 'test'} image (Debian ${SUITE})`,
    os: 'Debian',
    release: SUITE,
    'clincus.kind': kind,
    'clincus.builder-version': String(BUILDER_VERSION),
    [INPUT_HASH_PROPERTY]: inputs.hash,
  }

  const steps: BuildStep[] = []
  if (needTools) {
    steps.push({
      id: 'image-tools',
      label: 'apt-get install mmdebstrap uidmap',
      weight: 3,
      run: () => aptInstall(IMAGE_TOOL_PACKAGES, signalOpt),
    })
  }
  steps.push({
    id: 'overlay',
    label: 'prepare overlay (init, tmux.conf)',
    weight: 1,
    run: async () => {
      await mkdir(join(cache, 'debs'), { recursive: true, mode: 0o700 })
      await makeOverlay(overlayDir, {
        init: inputs.init,
        tmuxConf: inputs.tmuxConf,
        certificates: inputs.certificates,
      })
      await writeText(files.configure, configureScript({ timeZone: inputs.timeZone }))
      if (inputs.setup.trim() !== '') await writeText(files.setup, inputs.setup)
    },
  })
  if (inputs.fakeTool !== undefined) {
    const script = inputs.fakeTool
    steps.push({
      id: 'fake-tool',
      label: 'install fake tool',
      weight: 1,
      run: () => installFakeTool(overlayDir, script, FAKE_TOOL_NAMES),
    })
  } else {
    steps.push({
      id: 'node',
      label: `install node ${NODE_PIN.version}`,
      weight: 4,
      run: async () => {
        const version = await stageNode(usrLocal, {
          nodeSpec: nodePackage(process.arch),
          npmVersion: NODE_PIN.npm,
          downloads: join(work, 'downloads'),
          npm: hostNpm,
          ...signalOpt,
        })
        properties[NODE_VERSION_PROPERTY] = version
      },
    })
    steps.push({
      id: 'npm',
      label: `npm install ${[...TOOL_PACKAGES.map((t) => t.npm), ...inputs.npm].join(' ')}`,
      weight: 30,
      run: async () => {
        await installGlobal(usrLocal, [...toolSpecs, ...inputs.npm], {
          npm: hostNpm,
          hostPath: process.env.PATH ?? '/usr/bin:/bin',
          ...signalOpt,
        })
        for (const { tool, npm } of TOOL_PACKAGES) {
          properties[`${TOOL_PROPERTY_PREFIX}${tool}`] = await installedVersion(usrLocal, npm)
        }
      },
    })
  }
  steps.push({
    id: 'bootstrap',
    label: `mmdebstrap ${SUITE} (${inputs.packages.length} packages)`,
    weight: 40,
    run: async () => {
      await packOverlay(overlayDir, files.overlay, signalOpt)
      await bootstrap(
        {
          suite: SUITE,
          archiveUri,
          packages: inputs.packages,
          output: files.rootfs,
          debCache: join(cache, 'debs'),
          overlay: files.overlay,
          configureScript: files.configure,
          setupScript: inputs.setup.trim() !== '' ? files.setup : undefined,
        },
        signal,
      )
    },
  })
  steps.push({
    id: 'metadata',
    label: 'pack metadata',
    weight: 1,
    run: () =>
      packMetadata(join(work, 'meta'), files.meta, {
        metadataYaml: renderMetadataYaml({
          architecture,
          creationDate: Math.floor(Date.now() / 1000),
          properties,
          templates: Object.fromEntries(
            Object.entries(TEMPLATES).map(([path, { rule }]) => [path, rule]),
          ),
        }),
        templates: Object.fromEntries(
          Object.values(TEMPLATES).map(({ rule, content }) => [rule.template, content]),
        ),
      }),
  })
  steps.push({
    id: 'import',
    label: 'incus image import',
    weight: 10,
    run: async () => {
      state.imported = await importImage(files, { project, alias: buildAlias, ...signalOpt })
    },
    // An image imported but never published is an orphan: gone with the failed build.
    undo: async () => {
      const orphan = state.imported
      if (orphan !== undefined && !state.published)
        await tryDelete(() => deleteImage(orphan, project))
    },
  })
  steps.push({
    id: 'publish',
    label: `publish as ${alias}`,
    weight: 1,
    run: async () => {
      const imported = state.imported
      if (imported === undefined) throw new Error('no image was imported')
      signal?.throwIfAborted()
      const previous = await retargetAlias(alias, imported, project)
      state.published = true
      await deleteAlias(buildAlias, project)
      // The old image goes once nothing names it; instances made from it keep their own copy.
      if (previous !== undefined && (await describeImage(previous, project)).aliases.length === 0) {
        await deleteImage(previous, project)
      }
    },
  })

  try {
    await runSteps(steps, {
      ...signalOpt,
      onProgress: (p) => {
        opts.onProgress({ step: p.label, progress: p.progress })
      },
      around: (step, run) => reporter.step(step.label, run),
    })
  } catch (error) {
    // An abort surfaces as its own reason, not as whichever subprocess it happened to interrupt;
    // otherwise the step's own error (apt's message, incus' reason), as before the shared loop.
    signal?.throwIfAborted()
    throw error instanceof StepFailure ? error.cause : error
  } finally {
    await removeWorkDir(work)
  }
  opts.onProgress({ step: 'done', progress: 1 })
  if (state.imported === undefined) throw new Error('image build finished without an image')
  return { alias, fingerprint: state.imported, inputHash: inputs.hash }
}

async function writeText(path: string, text: string): Promise<void> {
  await writeFile(path, text, { mode: 0o600 })
}

export interface EnsureTestImageOptions {
  project: string
  reporter?: SetupReporter
  onProgress?: (progress: BuildProgress) => void
  signal?: AbortSignal
  /** Rebuild even when the published image matches the inputs. */
  force?: boolean
}

export interface TestImageStatus extends BuiltImage {
  built: boolean
}

/**
 * Builds `clincus-test` only when it is missing or was built from other inputs (fake tool, init
 * script, package list, builder version): the hash is kept in the image's own properties.
 */
export async function ensureTestImage(opts: EnsureTestImageOptions): Promise<TestImageStatus> {
  const reporter = opts.reporter ?? silentReporter
  const hash = await testImageInputHash()
  const current = await describeAlias(TEST_IMAGE_ALIAS, opts.project)
  if (!opts.force && current?.properties[INPUT_HASH_PROPERTY] === hash) {
    reporter.note(`${TEST_IMAGE_ALIAS} image is up to date (inputs ${hash.slice(0, 8)})`)
    return {
      built: false,
      alias: TEST_IMAGE_ALIAS,
      fingerprint: current.fingerprint,
      inputHash: hash,
    }
  }
  reporter.note(
    current === undefined
      ? `${TEST_IMAGE_ALIAS} image missing: building it`
      : current.properties[INPUT_HASH_PROPERTY] === hash
        ? `${TEST_IMAGE_ALIAS} image is up to date: rebuilding it anyway (forced)`
        : `${TEST_IMAGE_ALIAS} image is stale: rebuilding it`,
  )
  const built = await buildImage('clincus-test', {
    project: opts.project,
    reporter,
    onProgress: opts.onProgress ?? (() => undefined),
    ...(opts.signal ? { signal: opts.signal } : {}),
  })
  return { built: true, ...built }
}
