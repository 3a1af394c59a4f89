import { describe, expect, it } from "vitest";

import {
  DEFAULT_SETTINGS,
  DEFAULT_UPSTREAM,
  SettingsError,
  checkConcurrency,
  checkToken,
  loadSettings,
  mixedContentProblem,
  parseFragment,
  safeStore,
  saveSettings,
  socketUrlFor,
  upstreamUrlFor,
  type KeyValueStore,
} from "../src/settings";

function memoryStore(): KeyValueStore {
  const items = new Map<string, string>();
  return {
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => void items.set(key, value),
    removeItem: (key) => void items.delete(key),
  };
}

describe("the URL fragment", () => {
  it("gives server, token and upstream", () => {
    expect(
      parseFragment("#server=http%3A%2F%2F127.0.0.1%3A8000&token=gpe_abc-DEF_123&upstream=http://127.0.0.1:9000/fake"),
    ).toEqual({ server: "http://127.0.0.1:8000", token: "gpe_abc-DEF_123", upstream: "http://127.0.0.1:9000/fake" });
  });

  it("may also give concurrency and a label", () => {
    expect(parseFragment("#concurrency=12&label=office%20laptop")).toEqual({ maxConcurrency: 12, label: "office laptop" });
  });

  it("gives nothing when empty or unrelated", () => {
    expect(parseFragment("")).toEqual({});
    expect(parseFragment("#section-2")).toEqual({});
  });
});

describe("the gateway URL", () => {
  it.each([
    ["https://gw.example.com", "wss://gw.example.com/ws/executor"],
    ["https://gw.example.com/", "wss://gw.example.com/ws/executor"],
    ["http://127.0.0.1:8000", "ws://127.0.0.1:8000/ws/executor"],
    ["ws://localhost:8000/ws/executor", "ws://localhost:8000/ws/executor"],
    ["wss://gw.example.com/ws/executor/", "wss://gw.example.com/ws/executor"],
    ["https://example.com/gemproxy/", "wss://example.com/gemproxy/ws/executor"],
    ["  https://gw.example.com  ", "wss://gw.example.com/ws/executor"],
  ])("%j connects to %j", (server, expected) => {
    expect(socketUrlFor(server, "https:")).toBe(expected);
  });

  it("given as a bare host, gets the page's own security", () => {
    expect(socketUrlFor("gw.example.com", "https:")).toBe("wss://gw.example.com/ws/executor");
    expect(socketUrlFor("localhost:8000", "http:")).toBe("ws://localhost:8000/ws/executor");
  });

  it.each(["", "ftp://gw.example.com", "https://user:gpe_x@gw.example.com"])("refuses %j", (server) => {
    expect(() => socketUrlFor(server, "https:")).toThrow(SettingsError);
  });
});

describe("mixed content", () => {
  it("is a problem for ws:// to another host from an https page", () => {
    expect(mixedContentProblem("https:", "ws://gw.example.com/ws/executor")).toMatch(/blocks the unencrypted ws:\/\/gw\.example\.com/);
  });

  it("is no problem for wss://, for an http page, or for this machine", () => {
    expect(mixedContentProblem("https:", "wss://gw.example.com/ws/executor")).toBeNull();
    expect(mixedContentProblem("http:", "ws://gw.example.com/ws/executor")).toBeNull();
    expect(mixedContentProblem("https:", "ws://localhost:8000/ws/executor")).toBeNull();
    expect(mixedContentProblem("https:", "ws://127.0.0.1:8000/ws/executor")).toBeNull();
    expect(mixedContentProblem("https:", "ws://[::1]:8000/ws/executor")).toBeNull();
  });
});

describe("the other settings", () => {
  it("default the upstream to Google's and drop a trailing slash", () => {
    expect(upstreamUrlFor("")).toBe(DEFAULT_UPSTREAM);
    expect(upstreamUrlFor("http://127.0.0.1:9000/fake/")).toBe("http://127.0.0.1:9000/fake");
    expect(() => upstreamUrlFor("ws://x")).toThrow(SettingsError);
  });

  it("trim the token and refuse one that cannot be a subprotocol", () => {
    expect(checkToken("  gpe_abc \n")).toBe("gpe_abc");
    expect(() => checkToken("gpe abc")).toThrow(SettingsError);
    expect(() => checkToken("")).toThrow(SettingsError);
  });

  it("bound the concurrency", () => {
    expect(checkConcurrency(6)).toBe(6);
    expect(() => checkConcurrency(0)).toThrow(SettingsError);
    expect(() => checkConcurrency(2.5)).toThrow(SettingsError);
    expect(() => checkConcurrency(Number.NaN)).toThrow(SettingsError);
  });
});

describe("remembering settings", () => {
  it("round-trips through storage", () => {
    const store = memoryStore();
    const settings = { server: "https://gw", token: "gpe_x", upstream: "https://up", maxConcurrency: 9, label: "a" };
    saveSettings(store, settings);
    expect(loadSettings(store)).toEqual(settings);
  });

  it("starts from the defaults when nothing or garbage is stored", () => {
    const store = memoryStore();
    expect(loadSettings(store)).toEqual(DEFAULT_SETTINGS);
    store.setItem("gemproxy.executor.settings", "{not json");
    expect(loadSettings(store)).toEqual(DEFAULT_SETTINGS);
  });

  it("keeps working for this visit when the browser denies storage", () => {
    const denied = safeStore(() => {
      throw new DOMException("The operation is insecure.", "SecurityError");
    });
    denied.setItem("k", "v");
    expect(denied.getItem("k")).toBe("v");

    const throwing = safeStore(() => ({
      getItem: () => {
        throw new Error("denied");
      },
      setItem: () => {
        throw new Error("denied");
      },
      removeItem: () => {
        throw new Error("denied");
      },
    }));
    throwing.setItem("k", "v");
    expect(throwing.getItem("k")).toBe("v");
  });
});
