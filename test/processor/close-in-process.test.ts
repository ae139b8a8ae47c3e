// close() is awaited at shutdown while a handler hangs: the process must stay alive until close()
// resolves. (Its wait timer was once unref'd, and Node exited with an unsettled top-level await.)
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const core = fileURLToPath(new URL('../../packages/core/dist/index.js', import.meta.url));

describe('close() in a real process', () => {
  it('resolves, and the code after it runs, while a handler never settles', () => {
    const script = `
      import { DedupProcessor } from ${JSON.stringify(core)};
      const processor = new DedupProcessor({ scope: 'shutdown' });
      const pending = processor.process({ id: 'stuck' }, () => new Promise(() => {}));
      await new Promise((resolve) => setTimeout(resolve, 20));
      await processor.close({ graceMs: 50 });
      const outcome = await pending;
      console.log('closed', outcome.status, outcome.abandoned === true);
    `;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout.trim()).toBe('closed failed true');
  });
});
