import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { claimExecutorId, newExecutorId, type ChannelLike } from "../src/identity";
import type { KeyValueStore } from "../src/settings";

function memoryStore(initial: Record<string, string> = {}): KeyValueStore {
  const items = new Map(Object.entries(initial));
  return {
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => void items.set(key, value),
    removeItem: (key) => void items.delete(key),
  };
}

/** Channels that deliver to every other channel of the same hub, like BroadcastChannel across tabs. */
function hub() {
  const channels: ChannelLike[] = [];
  return () => {
    const channel: ChannelLike = {
      onmessage: null,
      postMessage(message) {
        for (const other of channels) {
          if (other !== channel) setTimeout(() => other.onmessage?.({ data: message } as MessageEvent), 0);
        }
      },
    };
    channels.push(channel);
    return channel;
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

async function claim(session: KeyValueStore, channel: ChannelLike | null, ids: string[]) {
  const claimed = claimExecutorId({ session, channel, makeId: () => ids.shift()! });
  await vi.advanceTimersByTimeAsync(500);
  return claimed;
}

describe("this tab's executor id", () => {
  it("is a fresh UUID the first time, kept in sessionStorage", async () => {
    const session = memoryStore();
    const id = await claim(session, null, ["id-1"]);
    expect(id).toBe("id-1");
    expect(session.getItem("gemproxy.executor.id")).toBe("id-1");
  });

  it("survives a reload of the tab", async () => {
    const session = memoryStore({ "gemproxy.executor.id": "id-kept" });
    expect(await claim(session, null, ["id-new"])).toBe("id-kept");
  });

  it("differs between two tabs", async () => {
    const channel = hub();
    const first = await claim(memoryStore(), channel(), ["id-1"]);
    const second = await claim(memoryStore(), channel(), ["id-2"]);
    expect(first).not.toBe(second);
  });

  it("is replaced in a duplicated tab, which copied the other's sessionStorage", async () => {
    const channel = hub();
    const original = memoryStore();
    const first = await claim(original, channel(), ["id-1"]);
    const copied = memoryStore({ "gemproxy.executor.id": first });
    const second = await claim(copied, channel(), ["id-2"]);
    expect(first).toBe("id-1");
    expect(second).toBe("id-2");
    expect(copied.getItem("gemproxy.executor.id")).toBe("id-2");
  });

  it("differs when two copies of one tab start at the same moment", async () => {
    const channel = hub();
    const [channelA, channelB] = [channel(), channel()];
    const [first, second] = await Promise.all([
      claimExecutorId({ session: memoryStore({ "gemproxy.executor.id": "same" }), channel: channelA, makeId: () => "id-a" }),
      claimExecutorId({ session: memoryStore({ "gemproxy.executor.id": "same" }), channel: channelB, makeId: () => "id-b" }),
      vi.advanceTimersByTimeAsync(500),
    ]);
    expect(first).not.toBe(second);
  });
});

describe("new executor ids", () => {
  it("are version 4 UUIDs", () => {
    expect(newExecutorId()).toMatch(UUID);
  });

  it("are made without crypto.randomUUID too, as on plain-http pages", () => {
    const original = crypto.randomUUID;
    Object.defineProperty(crypto, "randomUUID", { value: undefined, configurable: true });
    try {
      const ids = new Set(Array.from({ length: 100 }, newExecutorId));
      expect(ids.size).toBe(100);
      for (const id of ids) expect(id).toMatch(UUID);
    } finally {
      Object.defineProperty(crypto, "randomUUID", { value: original, configurable: true });
    }
  });
});
