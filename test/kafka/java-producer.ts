// Produces with the official Java client (fixtures/NullHeaderProducer.java), for what kafkajs cannot
// send: a header whose value is null (kafkajs throws while sizing it). It runs from the same Maven
// jars as the test broker (scripts/kafka/fetch-jars.sh), with `java` in single-file source mode.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brokers } from './kafka-test-context.js';

const jarsDir = fileURLToPath(new URL('../../.cache/kafka-jars', import.meta.url));
const source = fileURLToPath(new URL('./fixtures/NullHeaderProducer.java', import.meta.url));

/** One record: its value and the values of the ID header, one header per entry (`null`: a null value). */
export interface JavaRecord {
  readonly value: string;
  readonly header: readonly (string | null)[];
}

/** Sends `records` to partition 0 of `topic`, in order, in one batch; rejects with the JVM's output on failure. */
export async function sendWithJavaProducer(topic: string, header: string, records: readonly JavaRecord[]): Promise<void> {
  if (!existsSync(jarsDir) || !readdirSync(jarsDir).some((file) => file.startsWith('kafka-clients-'))) {
    throw new Error(`the Java producer needs the Kafka jars in ${jarsDir}: run scripts/kafka/fetch-jars.sh`);
  }
  const java = process.env['JAVA_HOME'] ? join(process.env['JAVA_HOME'], 'bin', 'java') : 'java';
  const specs = records.map(({ value, header: values }) => {
    if (value.includes('=') || values.some((v) => v !== null && (v.includes(',') || v === '<null>'))) throw new Error(`cannot encode ${value}`);
    return `${value}=${values.map((v) => v ?? '<null>').join(',')}`;
  });
  const args = ['-Xmx128m', '-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC', '-cp', join(jarsDir, '*'), source, brokers().join(','), topic, header, ...specs];
  const child = spawn(java, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', resolve);
  });
  if (code !== 0) throw new Error(`${source} exited with ${String(code)}:\n${output}`);
}
