/** Waits `ms`, heartbeating at least every `heartbeatMs`, and stops early when `stop()` turns true. */
export async function waitWithHeartbeat(ms: number, heartbeatMs: number, heartbeat: () => Promise<void>, stop: () => boolean): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    const left = until - Date.now();
    if (left <= 0 || stop()) return;
    await new Promise((resolve) => setTimeout(resolve, Math.min(left, heartbeatMs)));
    await heartbeat();
  }
}
