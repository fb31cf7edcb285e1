import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';

/**
 * The results page's static files, served by the admin API with no authentication (they hold
 * no data; the page asks for a token once and sends it with every data call). The chart
 * library is the `uplot` package from npm, served from node_modules: the page works offline
 * and loads nothing from elsewhere, which the Content-Security-Policy enforces (no inline
 * script, no other origin).
 */
const UI = resolve(import.meta.dirname, 'ui');
const UPLOT = join(dirname(createRequire(import.meta.url).resolve('uplot')), '..', 'dist');
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const FILES: Record<string, { file: string; type: string }> = {
  '/': { file: join(UI, 'index.html'), type: 'text/html; charset=utf-8' },
  '/ui/app.js': { file: join(UI, 'app.js'), type: 'text/javascript; charset=utf-8' },
  '/ui/app.css': { file: join(UI, 'app.css'), type: 'text/css; charset=utf-8' },
  '/ui/uplot.js': { file: join(UPLOT, 'uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  '/ui/uplot.css': { file: join(UPLOT, 'uPlot.min.css'), type: 'text/css; charset=utf-8' },
};

export function registerResultsPage(app: FastifyInstance): void {
  for (const [path, { file, type }] of Object.entries(FILES)) {
    // Read once at start: a missing file fails the API's start, not a page load.
    const body = readFileSync(file);
    app.get(path, async (_request, reply) =>
      reply.header('content-type', type).header('content-security-policy', CSP).header('x-content-type-options', 'nosniff').header('cache-control', 'no-cache').send(body),
    );
  }
}
