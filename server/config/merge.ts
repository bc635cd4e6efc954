// Pure config merging and validation: layers are partial TOML documents applied over defaults.
import type { TSchema } from 'typebox'
import { Value } from 'typebox/value'
import { ConfigSchema, type Config } from '../../shared/schemas/config.ts'

export type Layer = Record<string, unknown>

/** Arrays that accumulate across files instead of replacing (as in the original). */
const APPEND_KEYS = new Set(['mounts.default', 'security.additional_protected_paths'])
/** Records whose entries are replaced whole (a profile is defined in one file). */
const REPLACE_ENTRY_KEYS = new Set(['profiles'])

export class ConfigError extends Error {
  readonly file: string
  readonly key: string
  /** The message without the file and key. */
  readonly detail: string

  constructor(file: string, key: string, message: string) {
    super(key ? `${file}: ${key}: ${message}` : `${file}: ${message}`)
    this.name = 'ConfigError'
    this.file = file
    this.key = key
    this.detail = message
  }
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false
  const proto: unknown = Object.getPrototypeOf(v)
  // smol-toml builds tables without a prototype
  return proto === Object.prototype || proto === null
}

export function defaultConfig(): Config {
  return Value.Default(ConfigSchema, {}) as Config
}

/** The value of an own property; never one inherited from Object.prototype. */
export function own(record: object, key: string): unknown {
  return Object.hasOwn(record, key) ? (record as Record<string, unknown>)[key] : undefined
}

/**
 * Sets an own, enumerable property even for keys like `__proto__`, which an assignment would turn
 * into a prototype change (a TOML table `[__proto__]` must become an unknown key, not a prototype).
 */
function setOwn(record: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(record, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  })
}

function copyOwn(...sources: Record<string, unknown>[]): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const src of sources) for (const [k, v] of Object.entries(src)) setOwn(out, k, v)
  return out
}

export function mergeInto(
  base: Record<string, unknown>,
  layer: Layer,
  prefix = '',
): Record<string, unknown> {
  const out = copyOwn(base)
  for (const [key, value] of Object.entries(layer)) {
    const path = prefix ? `${prefix}.${key}` : key
    const current = own(out, key)
    if (REPLACE_ENTRY_KEYS.has(path) && isPlainObject(value) && isPlainObject(current)) {
      setOwn(out, key, copyOwn(current, value))
    } else if (isPlainObject(value) && isPlainObject(current)) {
      setOwn(out, key, mergeInto(current, value, path))
    } else if (APPEND_KEYS.has(path) && Array.isArray(value) && Array.isArray(current)) {
      setOwn(out, key, [...(current as unknown[]), ...(value as unknown[])])
    } else {
      setOwn(out, key, value)
    }
  }
  return out
}

function describe(schema: TSchema | undefined): string {
  if (!schema) return 'a valid value'
  const s = schema as Record<string, unknown>
  if (typeof s['x-expected'] === 'string') return s['x-expected']
  switch (s.type) {
    case 'string':
      return typeof s.pattern === 'string' ? `a string matching ${s.pattern}` : 'a string'
    case 'integer':
      return 'an integer'
    case 'number':
      return 'a number'
    case 'boolean':
      return 'true or false'
    case 'array':
      return 'an array'
    case 'object':
      return 'a table'
    default:
      return 'a valid value'
  }
}

function schemaAt(path: string[]): TSchema | undefined {
  let node: Record<string, unknown> = ConfigSchema as unknown as Record<string, unknown>
  for (const part of path) {
    const props = node.properties as Record<string, Record<string, unknown>> | undefined
    const prop = props ? own(props, part) : undefined
    if (isPlainObject(prop)) node = prop
    else if (node.type === 'array' && isPlainObject(node.items)) node = node.items
    else if (isPlainObject(node.patternProperties))
      node = Object.values(node.patternProperties)[0] as Record<string, unknown>
    else if (isPlainObject(node.additionalProperties)) node = node.additionalProperties
    else return undefined
  }
  return node
}

function valueAt(root: unknown, path: string[]): unknown {
  let node = root
  for (const part of path) {
    if (isPlainObject(node)) node = own(node, part)
    else if (Array.isArray(node)) node = node[Number(part)]
    else return undefined
  }
  return node
}

/** Validates a complete config object; the first problem becomes a ConfigError naming `file`. */
export function validateConfig(candidate: unknown, file: string): Config {
  const first = Value.Errors(ConfigSchema, candidate).find((e) => e.keyword !== 'boolean')
  const any = first ?? Value.Errors(ConfigSchema, candidate)[0]
  if (!any) return candidate as Config
  const path = any.instancePath.split('/').filter(Boolean)
  const params = any.params as Record<string, unknown>
  if (any.keyword === 'additionalProperties' && Array.isArray(params.additionalProperties)) {
    const extra = String(params.additionalProperties[0])
    const key = [...path, extra].join('.')
    const parent = path.join('.')
    if (parent === 'profiles')
      return fail(file, key, `invalid profile name: use letters, digits, "_" and "-" (not first)`)
    if (/^profiles\.[^.]+\.environment$/.test(parent))
      return fail(file, key, 'invalid variable name: use letters, digits and "_" (no digit first)')
    return fail(file, key, `unknown key "${key}"`)
  }
  const key = path.join('.')
  const got = valueAt(candidate, path)
  // A profile's environment holds the agent's API keys: only the kind of a wrong value is shown
  // there (the message reaches the dashboard and the log). Elsewhere a scalar is shown as typed.
  const secret = path.length >= 3 && path[0] === 'profiles' && path[2] === 'environment'
  const scalar = got === null || (typeof got !== 'object' && typeof got !== 'function')
  const shown = scalar && !secret ? JSON.stringify(got) : kindOf(got)
  return fail(file, key, `expected ${describe(schemaAt(path))}, got ${shown}`)
}

/** A TOML value's kind, for messages that must not show the value itself. */
function kindOf(value: unknown): string {
  if (value instanceof Date) return 'a date'
  if (Array.isArray(value)) return 'an array'
  if (value === null || value === undefined) return 'nothing'
  switch (typeof value) {
    case 'string':
      return 'a string'
    case 'number':
    case 'bigint':
      return 'a number'
    case 'boolean':
      return 'a boolean'
    case 'object':
      return 'a table'
    default:
      return 'a value'
  }
}

function fail(file: string, key: string, message: string): never {
  throw new ConfigError(file, key, message)
}

/** Applies one layer over a valid config and checks the result, blaming `file` for problems. */
export function applyLayer(base: Config, layer: Layer, file: string): Config {
  const merged = mergeInto(base, layer)
  return validateConfig(merged, file)
}
