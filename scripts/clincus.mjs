#!/usr/bin/env node
// The `clincus` command (package.json bin): runs the TypeScript entry point through tsx, since
// Node 20 cannot run TypeScript by itself.
import { register } from 'tsx/esm/api'

register()
await import('../server/main.ts')
