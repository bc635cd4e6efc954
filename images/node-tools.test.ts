import { describe, expect, it } from 'vitest'
import { packageName } from './node-tools.ts'

describe('packageName', () => {
  it.each([
    ['typescript', 'typescript'],
    ['pnpm@9', 'pnpm'],
    ['@anthropic-ai/claude-code', '@anthropic-ai/claude-code'],
    ['@anthropic-ai/claude-code@2.1.197', '@anthropic-ai/claude-code'],
  ])('%s → %s', (spec, name) => {
    expect(packageName(spec)).toBe(name)
  })
})
