// Copies files with one extension from a source tree into the build output, keeping their paths:
// tsc emits only JavaScript, and the Redis store reads its Lua scripts next to its modules.
import { cpSync, readdirSync, statSync, mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';

const [from, to, ext] = process.argv.slice(2);
if (!from || !to || !ext) {
  console.error('usage: node scripts/copy-files.mjs <from> <to> <.ext>');
  process.exit(2);
}
const walk = (dir) =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
for (const file of walk(from).filter((f) => f.endsWith(ext))) {
  const target = join(to, file.slice(from.length));
  mkdirSync(dirname(target), { recursive: true });
  cpSync(file, target);
}
