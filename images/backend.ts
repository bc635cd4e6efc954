// The production ImageBackend: Incus' image store for lookups, build.ts for builds. The kind of an
// alias follows its name (`clincus-test*` is built with the fake tool, anything else with the
// real agents).
import type { ImageBackend } from '../server/image-manager.ts'
import { buildImage, imageInputs } from './build.ts'
import { describeAlias } from './image-store.ts'
import { kindOfAlias } from './recipe.ts'

/** `project` is read per call, so a config reload that changes it applies to the next request. */
export function incusImageBackend(project: () => string): ImageBackend {
  return {
    describe: (alias) => describeAlias(alias, project()),
    expectedHash: async (alias, extras) => (await imageInputs(kindOfAlias(alias), extras)).hash,
    build: async (alias, request, onProgress, signal) => {
      await buildImage(kindOfAlias(alias), {
        project: project(),
        alias,
        extras: request.extras,
        update: request.update,
        onProgress,
        signal,
      })
    },
  }
}
