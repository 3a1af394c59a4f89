import { describe, expect, it } from "vitest";

import { ExecutorRuntime } from "../src/runtime";
import { SERVED_GATEWAY_META, saveSettings, servedGateway, DEFAULT_SETTINGS, type KeyValueStore, type PageHead } from "../src/settings";
import { socketFactory } from "./fakes";

function memoryStore(): KeyValueStore {
  const items = new Map<string, string>();
  return {
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => void items.set(key, value),
    removeItem: (key) => void items.delete(key),
  };
}

/** A page head holding one gemproxy-gateway meta tag with this content, or none. */
function head(content: string | null): PageHead {
  return {
    querySelector: (selector) =>
      content !== null && selector === `meta[name="${SERVED_GATEWAY_META}"]`
        ? { getAttribute: (name) => (name === "content" ? content : null) }
        : null,
  };
}

const PAGE = { protocol: "http:", host: "gw.example.com:8000" };

describe("the gateway URL a serving gateway gives", () => {
  it("is read from the meta tag", () => {
    expect(servedGateway(head("http://gw.example.com:8000"), PAGE)).toBe("http://gw.example.com:8000");
  });

  it("keeps a path prefix, without a trailing slash", () => {
    expect(servedGateway(head("http://gw.example.com:8000/gemproxy/"), PAGE)).toBe("http://gw.example.com:8000/gemproxy");
  });

  it("is empty when the page came from elsewhere (AI Studio, a dev server)", () => {
    expect(servedGateway(head(null), PAGE)).toBe("");
  });

  it("takes the page's protocol for the page's own host, where a TLS proxy hid https from the gateway", () => {
    expect(servedGateway(head("http://gw.example.com"), { protocol: "https:", host: "gw.example.com" })).toBe(
      "https://gw.example.com",
    );
  });

  it("ignores what is not an http(s) URL without credentials", () => {
    for (const bad of ["", "not a url", "javascript:alert(1)", "ftp://gw", "http://user:pw@gw", "http://gw/?x=1"]) {
      expect(servedGateway(head(bad), PAGE), bad).toBe("");
    }
  });
});

function runtime(local: KeyValueStore, served: string, fragment = "") {
  const sockets = socketFactory();
  const subject = new ExecutorRuntime({
    pageProtocol: "http:",
    fragment,
    clearFragment: () => undefined,
    local,
    session: memoryStore(),
    channel: null,
    createSocket: sockets.create,
    servedGateway: served,
  });
  return { subject, sockets };
}

describe("the settings of a page served by a gateway", () => {
  it("show the serving gateway as the gateway URL", () => {
    expect(runtime(memoryStore(), "http://gw.example.com:8000").subject.settings.server).toBe("http://gw.example.com:8000");
  });

  it("keep a gateway the person saved before", () => {
    const local = memoryStore();
    saveSettings(local, { ...DEFAULT_SETTINGS, server: "https://other.example.com" });
    expect(runtime(local, "http://gw.example.com:8000").subject.settings.server).toBe("https://other.example.com");
  });

  it("keep a gateway given in the fragment", () => {
    const { subject } = runtime(memoryStore(), "http://gw.example.com:8000", "#server=https%3A%2F%2Ffrag.example.com");
    expect(subject.settings.server).toBe("https://frag.example.com");
  });

  it("do not save the serving gateway before the person connects with it", () => {
    const local = memoryStore();
    runtime(local, "http://gw.example.com:8000");
    expect(local.getItem("gemproxy.executor.settings")).toBeNull();
  });

  it("connect to the serving gateway once a token is entered", async () => {
    const { subject, sockets } = runtime(memoryStore(), "http://gw.example.com:8000");
    expect(await subject.connect({ ...subject.settings, token: "gpe_abc" })).toBeNull();
    expect(sockets.last().url).toBe("ws://gw.example.com:8000/ws/executor");
    subject.disconnect();
  });

  it("come back to the serving gateway after Forget", () => {
    const local = memoryStore();
    saveSettings(local, { ...DEFAULT_SETTINGS, server: "https://other.example.com", token: "gpe_x" });
    const { subject } = runtime(local, "http://gw.example.com:8000");
    subject.forget();
    expect(subject.settings).toMatchObject({ server: "http://gw.example.com:8000", token: "" });
  });
});
