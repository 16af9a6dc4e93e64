#!/usr/bin/env node
// The `pemba` command: runs the compiled CLI (dist/cli/main.js), first building dist/ from src/
// when it is missing or older than its sources (bin/build.js), so `npm start` and `npx pemba`
// work on a fresh clone and after a `git pull`.
import { build } from './build.js'

const code = build()
if (code !== 0) process.exit(code)
await import('../dist/cli/main.js')
