import type { Admin } from 'kafkajs';

/** What {@link replayTopic} uses of an admin client: kafkajs' `Admin` fits (Confluent's KafkaJS admin has no `resetOffsets`/`setOffsets`). */
export type ReplayAdmin = Pick<Admin, 'resetOffsets' | 'setOffsets' | 'fetchTopicOffsets' | 'fetchTopicOffsetsByTimestamp'>;

/** Where a replay starts. */
export type ReplayFrom = 'earliest' | { readonly timestamp: number | Date };

export interface ReplayOptions {
  /** The consumer group whose committed offsets move. It must have no running members. */
  readonly groupId: string;
  readonly topic: string;
  /** `'earliest'`, or the first offset at or after a timestamp, per partition. */
  readonly from: ReplayFrom;
}

/**
 * Moves a consumer group's committed offsets back so its next run re-reads `topic` from the earliest
 * offset or from a point in time. Stop the group's consumers first (Kafka refuses to move the offsets
 * of a group with live members).
 *
 * What the re-read does under onceonly: messages whose ID is completed within the window are skipped
 * as duplicates; offsets at or below the group's high-water mark are skipped even after their IDs
 * expired; `reprocess: true` on {@link KafkaDedup} runs the marked offsets again on purpose. Returns the
 * offsets it set, per partition. It needs kafkajs' admin (Confluent's cannot move a group's offsets);
 * the group's consumers may be either client.
 *
 * @example
 * await consumer.disconnect();
 * await replayTopic(admin, { groupId: 'billing', topic: 'orders', from: { timestamp: Date.parse('2026-11-01') } });
 * await consumer.connect(); // ... run again: already-processed messages are skipped
 */
export async function replayTopic(admin: ReplayAdmin, options: ReplayOptions): Promise<{ partition: number; offset: string }[]> {
  const { groupId, topic, from } = options;
  if (typeof admin.resetOffsets !== 'function' || typeof admin.setOffsets !== 'function') {
    throw new TypeError(
      "replayTopic: the admin client has no resetOffsets/setOffsets (Confluent's KafkaJS admin has neither): " +
        "use a kafkajs admin for the replay, or kafka-consumer-groups.sh --reset-offsets; consumers of either client then re-read the topic",
    );
  }
  if (from === 'earliest') {
    await admin.resetOffsets({ groupId, topic, earliest: true });
    return (await admin.fetchTopicOffsets(topic)).map(({ partition, low }) => ({ partition, offset: low }));
  }
  const timestamp = from.timestamp instanceof Date ? from.timestamp.getTime() : from.timestamp;
  if (!Number.isFinite(timestamp)) throw new RangeError(`replayTopic: timestamp must be a finite number of milliseconds, got ${String(from.timestamp)}`);
  const byTime = await admin.fetchTopicOffsetsByTimestamp(topic, timestamp);
  const latest = new Map((await admin.fetchTopicOffsets(topic)).map(({ partition, high }) => [partition, high]));
  // -1: no message at or after the timestamp in that partition; start after its last message.
  const partitions = byTime.map(({ partition, offset }) => ({ partition, offset: offset === '-1' ? (latest.get(partition) ?? offset) : offset }));
  await admin.setOffsets({ groupId, topic, partitions });
  return partitions;
}
