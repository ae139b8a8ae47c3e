// Makes `npm run demo` and `npm test` work on a fresh clone: installs the locked dependencies first when
// they are missing or older than package-lock.json. Plain Node, no dependencies: it runs before any exist.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';

// package.json's engines field: say so plainly instead of failing somewhere later.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 20 || (major === 20 && minor < 19)) {
  console.error(`onceonly needs Node.js 20.19 or newer; this is ${process.version} (${process.execPath}).`);
  process.exit(1);
}

const installed = 'node_modules/.package-lock.json';
const stale = !existsSync(installed) || !existsSync('node_modules/.bin/turbo') || statSync(installed).mtimeMs < statSync('package-lock.json').mtimeMs;
if (stale) {
  console.error('Installing dependencies (npm ci)…');
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const result = spawnSync(npm, ['ci', '--no-audit', '--no-fund'], { stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
}
