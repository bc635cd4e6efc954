// Which images the config asks for, and with which extras: the default image with `[image]`, and
// each profile's `image` with `[image]` plus its `[profiles.x.image_extras]`. Pure.
import type { Config, ImageExtrasConfig } from '../shared/schemas/config.ts'
import { mergeExtras, NO_EXTRAS, type ImageExtras } from './recipe.ts'

export interface ImageTarget {
  alias: string
  extras: ImageExtras
}

function extrasOf(config: Partial<ImageExtrasConfig> | undefined): ImageExtras {
  return {
    packages: config?.packages ?? NO_EXTRAS.packages,
    npm: config?.npm ?? NO_EXTRAS.npm,
    setup: config?.setup ?? NO_EXTRAS.setup,
  }
}

/** Every alias the config names, in a stable order: the default first, then profiles by name. */
export function imageTargets(config: Config): ImageTarget[] {
  const global = extrasOf(config.image)
  const targets = new Map<string, ImageTarget>()
  targets.set(config.defaults.image, { alias: config.defaults.image, extras: global })
  for (const name of Object.keys(config.profiles).sort()) {
    const profile = config.profiles[name]
    if (profile?.image === undefined) continue
    const extras = mergeExtras(global, extrasOf(profile.image_extras))
    const known = targets.get(profile.image)
    // The first to name an alias defines it; a profile that only names it adds nothing.
    if (known === undefined) targets.set(profile.image, { alias: profile.image, extras })
  }
  return [...targets.values()]
}
