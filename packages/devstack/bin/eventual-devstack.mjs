#!/usr/bin/env node
// The `eventual-devstack` command (`pnpm devstack up` at the workspace root). The
// package ships TypeScript sources, so tsx loads them.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli.ts');
process.exit(await main(process.argv.slice(2)));
