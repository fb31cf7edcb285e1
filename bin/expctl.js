#!/usr/bin/env node
// The CLI runs the TypeScript sources directly through tsx's loader: no build step
// between editing a service and running it.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../services/cli/main.ts');
process.exitCode = await main(process.argv);
