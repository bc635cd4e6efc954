// The image builder's one entry point for the server (server/main.ts, server/image-manager.ts,
// server/routes/images.ts): the production ImageBackend, a foreground build (`clincus build`),
// which images the config asks for, and what the server reads off a stored image. Everything else
// in images/ (the recipe's steps, the rootfs, the Node toolchain) is the builder's own business.
export { incusImageBackend } from './backend.ts'
export { buildImage, type BuildImageOptions, type BuildProgress } from './build.ts'
export {
  INPUT_HASH_PROPERTY,
  kindOfAlias,
  toolVersionsOf,
  type ImageExtras,
  type ImageKind,
} from './recipe.ts'
export { imageTargets, type ImageTarget } from './targets.ts'
