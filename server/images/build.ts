// Builds the `clincus` (real tools) and `clincus-test` (fake tool) images without any image server:
// debootstrap on the host, our own PID 1 and user, `incus image import`, then an atomic alias move
// so the previous image keeps serving launches until the new one is published (spec §5.4).
import { access, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { repoRoot } from '../paths.ts'
import { aptInstall } from '../provision/apt.ts'
import { configuredArchive } from '../provision/apt-sources.ts'
import { findExecutable, isRoot } from '../provision/host.ts'
import { silentReporter, type SetupReporter } from '../provision/reporter.ts'
import {
  deleteAlias,
  deleteImage,
  describeAlias,
  describeImage,
  importImage,
  retargetAlias,
  tryDelete,
} from './image-store.ts'
import { hostNpmRoot, installNode, installNpmPackage } from './node-tools.ts'
import {
  BASE_PACKAGES,
  BUILDER_VERSION,
  FAKE_TOOL_NAMES,
  incusArchitecture,
  INPUT_HASH_PROPERTY,
  inputHash,
  renderMetadataYaml,
  rootfsCacheKey,
  SUITE,
  TEMPLATES,
  TOOL_PACKAGES,
  type ImageKind,
} from './recipe.ts'
import {
  cachedRootfsPath,
  configureBase,
  installFakeTool,
  makeWorkDir,
  packMetadata,
  packRootfs,
  prepareRootfs,
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
}

export interface BuiltImage {
  alias: string
  fingerprint: string
  inputHash: string
}

interface Step {
  name: string
  weight: number
  run: () => Promise<void>
}

async function readAsset(name: string): Promise<string> {
  return readFile(join(repoRoot, 'server', 'images', name), 'utf8')
}

interface ImageInputs {
  init: string
  fakeTool: string | undefined
  hash: string
}

/** Everything a build consumes that lives in this repository, hashed for staleness checks. */
async function imageInputs(kind: ImageKind): Promise<ImageInputs> {
  const init = await readAsset('init.sh')
  const fakeTool = kind === 'clincus-test' ? await readAsset('fake-tool.sh') : undefined
  const files: Record<string, string> = { 'init.sh': init }
  for (const { rule, content } of Object.values(TEMPLATES)) {
    files[`templates/${rule.template}`] = content
  }
  if (fakeTool !== undefined) {
    files['fake-tool.sh'] = fakeTool
  } else {
    files['npm-packages'] = TOOL_PACKAGES.map((tool) => tool.npm).join('\n')
  }
  const hash = inputHash({
    kind,
    builderVersion: BUILDER_VERSION,
    suite: SUITE,
    packages: BASE_PACKAGES,
    files,
  })
  return { init, fakeTool, hash }
}

export async function testImageInputHash(): Promise<string> {
  return (await imageInputs('clincus-test')).hash
}

export async function buildImage(kind: ImageKind, opts: BuildImageOptions): Promise<BuiltImage> {
  opts.signal?.throwIfAborted()
  if (!isRoot()) {
    throw new Error(
      `building the ${kind} image needs root (debootstrap, chroot): run setup as root`,
    )
  }
  const reporter = opts.reporter ?? silentReporter
  const alias = opts.alias ?? kind
  const { project, signal } = opts
  const signalOpt = signal ? { signal } : {}
  const inputs = await imageInputs(kind)
  const archiveUri = opts.archiveUri ?? (await configuredArchive(SUITE)).uri
  const architecture = incusArchitecture(process.arch)
  const cacheKey = rootfsCacheKey(SUITE, architecture, BASE_PACKAGES)
  const cached = await access(cachedRootfsPath(cacheKey)).then(
    () => true,
    () => false,
  )
  // Even with a cache: a truncated cache falls back to debootstrap.
  const needDebootstrap = (await findExecutable('debootstrap')) === undefined
  const npmRoot = kind === 'clincus' ? await hostNpmRoot() : undefined

  const work = await makeWorkDir()
  const rootfs = join(work, 'rootfs')
  const files = { meta: join(work, 'meta.tar.gz'), rootfs: join(work, 'rootfs.tar') }
  const buildAlias = `${alias}-building-${process.pid}-${Date.now()}`
  // Written by the steps below (closures), read by the cleanup path.
  const state: { imported?: string; published: boolean } = { published: false }

  const steps: Step[] = []
  if (needDebootstrap) {
    steps.push({
      name: 'apt-get install debootstrap',
      weight: 3,
      run: () => aptInstall(['debootstrap'], signalOpt),
    })
  }
  steps.push({
    name: cached ? 'unpack cached rootfs' : `debootstrap ${SUITE} (cached afterwards)`,
    weight: cached ? 5 : 40,
    run: async () => {
      await prepareRootfs(rootfs, {
        suite: SUITE,
        packages: BASE_PACKAGES,
        archiveUri,
        cacheKey,
        ...signalOpt,
      })
    },
  })
  steps.push({
    name: 'configure rootfs (init, code user)',
    weight: 1,
    run: () => configureBase(rootfs, { init: inputs.init }),
  })
  if (inputs.fakeTool !== undefined) {
    const script = inputs.fakeTool
    steps.push({
      name: 'install fake tool',
      weight: 1,
      run: () => installFakeTool(rootfs, script, FAKE_TOOL_NAMES),
    })
  } else {
    steps.push({
      name: 'install node',
      weight: 2,
      run: () => installNode(rootfs, { nodePath: process.execPath, npmRoot }),
    })
    for (const tool of TOOL_PACKAGES) {
      steps.push({
        name: `npm install ${tool.npm}`,
        weight: 12,
        run: async () => {
          if (npmRoot === undefined) {
            throw new Error('npm is needed on the host to install the tools')
          }
          await installNpmPackage(rootfs, tool.npm, {
            nodePath: process.execPath,
            npmRoot,
            ...signalOpt,
          })
        },
      })
    }
  }
  steps.push({
    name: 'pack image',
    weight: 10,
    run: async () => {
      await packRootfs(rootfs, files.rootfs, signalOpt)
      await packMetadata(join(work, 'meta'), files.meta, {
        metadataYaml: renderMetadataYaml({
          architecture,
          creationDate: Math.floor(Date.now() / 1000),
          properties: {
            description: `clincus ${kind === 'clincus' ? 'agent' : 'test'} image (Debian ${SUITE})`,
            os: 'Debian',
            release: SUITE,
            'clincus.kind': kind,
            'clincus.builder-version': String(BUILDER_VERSION),
            [INPUT_HASH_PROPERTY]: inputs.hash,
          },
          templates: Object.fromEntries(
            Object.entries(TEMPLATES).map(([path, { rule }]) => [path, rule]),
          ),
        }),
        templates: Object.fromEntries(
          Object.values(TEMPLATES).map(({ rule, content }) => [rule.template, content]),
        ),
      })
    },
  })
  steps.push({
    name: 'incus image import',
    weight: 10,
    run: async () => {
      state.imported = await importImage(files, { project, alias: buildAlias, ...signalOpt })
    },
  })
  steps.push({
    name: `publish as ${alias}`,
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

  const total = steps.reduce((sum, step) => sum + step.weight, 0)
  let done = 0
  try {
    for (const step of steps) {
      signal?.throwIfAborted()
      opts.onProgress({ step: step.name, progress: done / total })
      await reporter.step(step.name, step.run)
      done += step.weight
    }
  } catch (error) {
    const orphan = state.imported
    if (orphan !== undefined && !state.published) {
      await tryDelete(() => deleteImage(orphan, project))
    }
    // An abort surfaces as its own reason, not as whichever subprocess it happened to interrupt.
    signal?.throwIfAborted()
    throw error
  } finally {
    await removeWorkDir(work)
  }
  opts.onProgress({ step: 'done', progress: 1 })
  if (state.imported === undefined) throw new Error('image build finished without an image')
  return { alias, fingerprint: state.imported, inputHash: inputs.hash }
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
