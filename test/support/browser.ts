import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import puppeteer, { type Browser } from 'puppeteer-core';

/**
 * Headless Chromium for the results page's browser test: Debian's `chromium` package (what
 * `.ci/run` installs when missing), driven by puppeteer-core, which downloads no browser of
 * its own. CHROMIUM_PATH names another binary. Screenshots go to test-artifacts/ (git-ignored).
 */
export const ARTIFACTS = resolve(import.meta.dirname, '../../test-artifacts');

export function chromiumPath(): string {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter((p): p is string => Boolean(p));
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`no Chromium found (looked at ${candidates.join(', ')}): install Debian's chromium package (apt-get install -y chromium; .ci/run does) or set CHROMIUM_PATH`);
  return found;
}

export async function launchChromium(): Promise<Browser> {
  mkdirSync(ARTIFACTS, { recursive: true });
  return puppeteer.launch({
    executablePath: chromiumPath(),
    headless: true,
    // The sandbox needs user namespaces, which CI containers running as root do not give.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--no-first-run'],
    defaultViewport: { width: 1366, height: 900 },
  });
}
