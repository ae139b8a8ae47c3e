// Loads every native addon (*.node) under node_modules with the running Node, to show which ones work
// on its ABI. An addon compiled by `npm ci` for another Node version (node-gyp, not N-API) fails to load
// here; that is fine only for the packages in OPTIONAL, which their users load in try/catch with a
// JavaScript fallback. Any other package without a loadable addon fails the check.
// Plain Node, no dependencies. .ci/run runs it on the second Node version (same node_modules).
import { readdirSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Packages (or scopes) whose native addon is optional: what happens without it. */
const OPTIONAL = {
  'cpu-features': 'ssh2 loads it in try/catch (CPU feature detection) and runs without it',
  ssh2: 'ssh2 loads its sshcrypto binding in try/catch and falls back to node:crypto (ssh2 only serves testcontainers)',
  '@msgpackr-extract': 'msgpackr (BullMQ) falls back to its JavaScript decoder',
};
const optional = (name) => Object.entries(OPTIONAL).find(([key]) => name === key || name.startsWith(`${key}/`))?.[1];

function* addons(dir) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory() && entry.name !== '.bin' && entry.name !== 'obj.target') yield* addons(path);
    else if (entry.isFile() && entry.name.endsWith('.node')) yield path;
  }
}

/** The package a file belongs to: the path segment(s) after the last node_modules. */
function packageOf(file) {
  const parts = relative(root, file).split(sep);
  const at = parts.lastIndexOf('node_modules');
  return parts[at + 1].startsWith('@') ? `${parts[at + 1]}/${parts[at + 2]}` : parts[at + 1];
}

const byPackage = new Map();
for (const file of addons(join(root, 'node_modules'))) {
  const name = packageOf(file);
  const entry = byPackage.get(name) ?? { loaded: [], failed: [] };
  try {
    process.dlopen({ exports: {} }, file);
    entry.loaded.push(file);
  } catch (error) {
    entry.failed.push(`${relative(root, file)}: ${String(error.message).split('\n')[0]}`);
  }
  byPackage.set(name, entry);
}

console.log(`native addons on node ${process.version} (ABI ${process.versions.modules}):`);
let bad = 0;
for (const [name, { loaded, failed }] of [...byPackage].sort(([a], [b]) => a.localeCompare(b))) {
  if (loaded.length > 0) {
    console.log(`  ok       ${name}`);
    continue;
  }
  const why = optional(name);
  if (why) {
    console.log(`  skipped  ${name}: does not load on this ABI; ${why}`);
  } else {
    bad++;
    console.log(`  FAILED   ${name}:\n${failed.map((f) => `             ${f}`).join('\n')}`);
  }
}
if (bad > 0) {
  console.error(
    `\n${bad} package(s) have no native addon that loads on node ${process.version}. They were built for another Node ` +
      'version: rebuild them for this one (npm rebuild, with this node first on PATH) or make them optional.',
  );
  process.exit(1);
}
