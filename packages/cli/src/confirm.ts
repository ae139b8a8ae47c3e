import { createInterface } from 'node:readline/promises';
import { CliError, ExitCode } from './exit-codes.js';

/** A terminal, or not: what a confirmation prompt needs from stdin and stderr. */
export interface PromptIo {
  readonly stdin: NodeJS.ReadableStream & { readonly isTTY?: boolean };
  readonly stderr: NodeJS.WritableStream;
}

/**
 * Asks `question` on stderr and reads the answer from stdin; resolves when it is "y" or "yes".
 * Refuses (exit code 4) without asking when stdin is not a terminal: a script or a pipe must say
 * `--yes` to destroy anything, it never answers a prompt by accident.
 * @throws {CliError} with exit code 4 when the answer is anything else, or stdin is not a terminal.
 */
export async function confirm(question: string, io: PromptIo): Promise<void> {
  if (io.stdin.isTTY !== true) {
    throw new CliError(ExitCode.REFUSED, 'refusing without confirmation: stdin is not a terminal. Pass --yes to go ahead, or --dry-run to see what it would do.');
  }
  const prompt = createInterface({ input: io.stdin, output: io.stderr, terminal: false });
  try {
    // End of input (Ctrl-D) answers no.
    const answer = await new Promise<string>((resolve) => {
      prompt.once('close', () => resolve(''));
      prompt.question(`${question} [y/N] `).then(resolve, () => resolve(''));
    });
    if (/^\s*y(es)?\s*$/i.test(answer)) return;
  } finally {
    prompt.close();
  }
  throw new CliError(ExitCode.REFUSED, 'not confirmed: nothing was changed');
}
