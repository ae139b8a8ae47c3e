// Type-checks every ```ts block of README.md, docs/*.md and packages/*/README.md under the project's strict
// compiler options, each block as its own ES module importing the packages by name (their sources, as in
// tsconfig.dev.json). Names a snippet uses without defining (a mailer, a broker message) are declared
// in PRELUDE below. Errors are reported at their README line. Plain Node; runs the repository's tsc.
// `npm run typecheck` runs it after the workspaces' typecheck.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, '.cache', 'docs-check');

// What the snippets assume exists around them. Keep it small: a snippet should define what it uses.
const PRELUDE = `
declare global {
  /** A message of some broker, as a snippet receives it. */
  const msg: { messageId: string; to: string };
  /** A batch of such messages. */
  const batch: { messageId: string; to: string }[];
  /** Some broker's producer side. */
  const broker: { send(message: { messageId: string; to: string }): Promise<void> };
  const mailer: { send(to: string, options: { signal: AbortSignal; idempotencyToken: number }): Promise<string> };
  function ack(message: unknown): void;
  function retryLater(message: unknown, afterMs?: number): void;
  function sendWelcome(data: { to: string }, options: { idempotencyKey: string }): Promise<{ sentTo: string }>;
  function charge(value: Buffer | null, id: string, token: number): Promise<void>;
  const order: { id: number; amount: number };
}
export {};
`;

const readmes = [
  'README.md',
  ...(existsSync(join(root, 'docs'))
    ? readdirSync(join(root, 'docs'))
        .filter((name) => name.endsWith('.md'))
        .sort()
        .map((name) => join('docs', name))
    : []),
  ...readdirSync(join(root, 'packages'))
    .map((name) => join('packages', name, 'README.md'))
    .filter((path) => existsSync(join(root, path))),
];

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const snippets = new Map(); // file name -> { readme, line of the block's first code line }
for (const readme of readmes) {
  const lines = readFileSync(join(root, readme), 'utf8').split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(ts|typescript)\s*$/.test(lines[i])) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !/^```\s*$/.test(lines[end])) end++;
    const name = `${readme.replaceAll('/', '_')}_${start + 1}.ts`;
    writeFileSync(join(out, name), `${lines.slice(start, end).join('\n')}\nexport {};\n`);
    snippets.set(name, { readme, line: start + 1 });
    i = end;
  }
}
writeFileSync(join(out, 'prelude.d.ts'), PRELUDE);
writeFileSync(
  join(out, 'tsconfig.json'),
  JSON.stringify({ extends: '../../tsconfig.dev.json', compilerOptions: { noEmit: true }, include: ['*.ts'] }, null, 2),
);

const tsc = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(out, 'tsconfig.json'), '--pretty', 'false'], {
  cwd: root,
  encoding: 'utf8',
});
// `.cache/docs-check/README.md_42.ts(3,7): error TS…` -> `README.md:44:7: error TS…`. Errors inside the
// packages' own sources are `npm run typecheck`'s to report, not this check's.
const errors = [];
let elsewhere = 0;
for (const line of `${tsc.stdout}${tsc.stderr}`.split('\n')) {
  const match = /^(?:\.cache\/docs-check\/)?([^\s(]+\.ts)\((\d+),(\d+)\)(.*)$/.exec(line);
  if (!match) {
    if (line.trim() && errors.length > 0 && line.startsWith(' ')) errors.push(line); // continuation of the last error
    continue;
  }
  const snippet = snippets.get(match[1]);
  if (snippet) errors.push(`${snippet.readme}:${snippet.line + Number(match[2]) - 1}:${match[3]}${match[4]}`);
  else elsewhere++;
}
if (tsc.status !== 0 && errors.length === 0 && elsewhere === 0) {
  process.stderr.write(`${tsc.stdout}${tsc.stderr}\ncheck-docs: tsc failed\n`);
  process.exit(1);
}
const note = elsewhere > 0 ? ` (${elsewhere} error(s) in the packages' sources left to npm run typecheck)` : '';
if (errors.length > 0) {
  process.stderr.write(`${errors.join('\n')}\n\ncheck-docs: the TypeScript snippets above do not compile${note}\n`);
  process.exit(1);
}
console.log(`check-docs: ${snippets.size} TypeScript snippets compile (${readmes.join(', ')})${note}`);
