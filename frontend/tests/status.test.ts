import { describe, expect, it } from "vitest";

import { LOG_LENGTH, StatusStore } from "../src/status";

function started(store: StatusStore, id: string) {
  store.taskStarted({ id, method: "POST", model: "gemini-2.5-flash", operation: "generateContent", startedAt: 1000, requestId: "" });
}

describe("the status store", () => {
  it("counts tasks in flight and by outcome", () => {
    const store = new StatusStore();
    for (const id of ["a", "b", "c", "d", "e"]) started(store, id);
    store.taskFinished({ id: "a", outcome: "served", status: 200, durationMs: 10, bytes: 5, detail: "" });
    store.taskFinished({ id: "b", outcome: "served", status: 429, durationMs: 10, bytes: 5, detail: "" });
    store.taskFinished({ id: "c", outcome: "failed", status: null, durationMs: 10, bytes: 0, detail: "Failed to fetch" });
    store.taskFinished({ id: "d", outcome: "cancelled", status: null, durationMs: 10, bytes: 0, detail: "" });
    store.flush();
    expect(store.getSnapshot()).toMatchObject({ inFlight: 1, served: 2, upstreamErrors: 1, failed: 1, cancelled: 1 });
  });

  it("logs each task, newest first, and fills in how it ended", () => {
    const store = new StatusStore();
    started(store, "a");
    started(store, "b");
    store.taskFinished({ id: "a", outcome: "served", status: 200, durationMs: 42, bytes: 7, detail: "" });
    store.flush();
    expect(store.getSnapshot().log.map((entry) => [entry.id, entry.outcome, entry.status, entry.durationMs])).toEqual([
      ["b", "running", null, null],
      ["a", "served", 200, 42],
    ]);
  });

  it("keeps only the most recent tasks", () => {
    const store = new StatusStore();
    for (let i = 0; i < LOG_LENGTH + 10; i++) started(store, `t${i}`);
    store.flush();
    expect(store.getSnapshot().log).toHaveLength(LOG_LENGTH);
    expect(store.getSnapshot().log[0]!.id).toBe(`t${LOG_LENGTH + 9}`);
  });

  it("tells listeners once for a burst of changes, with a new snapshot", () => {
    const store = new StatusStore();
    const before = store.getSnapshot();
    let calls = 0;
    store.subscribe(() => (calls += 1));
    started(store, "a");
    started(store, "b");
    store.statusChanged({ state: "connecting", url: "wss://gw/ws/executor" });
    expect(store.getSnapshot()).toBe(before);
    store.flush();
    expect(calls).toBe(1);
    expect(store.getSnapshot()).not.toBe(before);
    expect(store.getSnapshot().connection.state).toBe("connecting");
  });
});
