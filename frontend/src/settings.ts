/**
 * What a person configures: the gateway, the executor token, and a few knobs.
 * Entered once in the page and kept in localStorage, or given in the URL
 * fragment (`#server=URL&token=TOKEN&upstream=URL`), which browsers never
 * send to any server.
 */

import { WEBSOCKET_PATH } from "./protocol";

export interface Settings {
  /** The gateway as the person typed it: http(s)://, ws(s):// or a bare host. */
  server: string;
  token: string;
  /** The Gemini base URL the tasks are performed against. */
  upstream: string;
  maxConcurrency: number;
  /** A name for this tab in the gateway's logs; empty for a generated one. */
  label: string;
}

export const DEFAULT_UPSTREAM = "https://generativelanguage.googleapis.com";
export const DEFAULT_MAX_CONCURRENCY = 6;
export const MAX_CONCURRENCY_LIMIT = 64;

export const DEFAULT_SETTINGS: Settings = {
  server: "",
  token: "",
  upstream: DEFAULT_UPSTREAM,
  maxConcurrency: DEFAULT_MAX_CONCURRENCY,
  label: "",
};

const SETTINGS_KEY = "gemproxy.executor.settings";

/** A setting that cannot be used, with a message for the person who entered it. */
export class SettingsError extends Error {
  constructor(
    readonly field: keyof Settings,
    message: string,
  ) {
    super(message);
    this.name = "SettingsError";
  }
}

/** The settings given in a URL fragment; absent keys are absent. */
export function parseFragment(hash: string): Partial<Settings> {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  const found: Partial<Settings> = {};
  const server = params.get("server");
  const token = params.get("token");
  const upstream = params.get("upstream");
  const concurrency = params.get("concurrency");
  const label = params.get("label");
  if (server) found.server = server.trim();
  if (token) found.token = token.trim();
  if (upstream) found.upstream = upstream.trim();
  if (concurrency && /^\d+$/.test(concurrency)) found.maxConcurrency = Number(concurrency);
  if (label) found.label = label.trim();
  return found;
}

/**
 * The WebSocket URL of the gateway's executor endpoint.
 *
 * Accepts what people paste: `https://gw.example.com` (becomes
 * `wss://gw.example.com/ws/executor`), `http://host:8000/`, a full
 * `ws(s)://.../ws/executor`, a gateway under a path prefix, or a bare host,
 * which gets the page's own security (wss from an https page).
 */
export function socketUrlFor(server: string, pageProtocol: string): string {
  let text = server.trim();
  if (!text) throw new SettingsError("server", "Enter the gateway URL.");
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) text = `${pageProtocol === "https:" ? "https" : "http"}://${text}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new SettingsError("server", `"${server}" is not a URL.`);
  }
  const scheme = { "http:": "ws:", "https:": "wss:", "ws:": "ws:", "wss:": "wss:" }[url.protocol];
  if (!scheme) throw new SettingsError("server", "The gateway URL must start with https://, http://, wss:// or ws://.");
  if (url.username || url.password) throw new SettingsError("server", "Put the token in its own field, not in the URL.");
  const path = url.pathname.replace(/\/+$/, "");
  const endpoint = path.endsWith(WEBSOCKET_PATH) ? path : path + WEBSOCKET_PATH;
  return `${scheme}//${url.host}${endpoint}`;
}

/** The name of the meta tag in which a gateway serving this app at /executor/ gives its own URL. */
export const SERVED_GATEWAY_META = "gemproxy-gateway";

/** The part of a Document that servedGateway reads. */
export interface PageHead {
  querySelector(selector: string): { getAttribute(name: string): string | null } | null;
}

/**
 * The URL of the gateway that served this page, or "" when the page did not
 * come from a gateway (in AI Studio, or a dev server). Only an http(s) URL
 * counts: anything else in the tag is not something to connect to.
 *
 * Behind a proxy that terminates TLS the gateway may believe it was reached
 * over http; the browser knows better, so for the page's own host the page's
 * protocol wins (else an https page would be offered a ws:// it must refuse).
 */
export function servedGateway(page: PageHead, location: { protocol: string; host: string }): string {
  const content = page.querySelector(`meta[name="${SERVED_GATEWAY_META}"]`)?.getAttribute("content")?.trim() ?? "";
  let url: URL;
  try {
    url = new URL(content);
  } catch {
    return "";
  }
  if ((url.protocol !== "https:" && url.protocol !== "http:") || url.username || url.password || url.search || url.hash) {
    return "";
  }
  const protocol = url.host === location.host && /^https?:$/.test(location.protocol) ? location.protocol : url.protocol;
  return `${protocol}//${url.host}${url.pathname.replace(/\/+$/, "")}`;
}

/** The upstream base URL without a trailing slash. */
export function upstreamUrlFor(upstream: string): string {
  const text = upstream.trim() || DEFAULT_UPSTREAM;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new SettingsError("upstream", `"${upstream}" is not a URL.`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new SettingsError("upstream", "The Gemini base URL must start with https:// or http://.");
  }
  if (url.search || url.hash) throw new SettingsError("upstream", "The Gemini base URL takes no query or fragment.");
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, "")}`;
}

// A WebSocket subprotocol must be an HTTP token (RFC 7230); anything else makes the constructor throw.
const TOKEN_CHARACTERS = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

export function checkToken(token: string): string {
  const trimmed = token.trim();
  if (!trimmed) throw new SettingsError("token", "Enter the executor token.");
  if (!TOKEN_CHARACTERS.test(trimmed)) {
    throw new SettingsError("token", "This does not look like an executor token (they start with gpe_).");
  }
  return trimmed;
}

export function checkConcurrency(value: number): number {
  if (!Number.isInteger(value) || value < 1 || value > MAX_CONCURRENCY_LIMIT) {
    throw new SettingsError("maxConcurrency", `Concurrent tasks must be a whole number from 1 to ${MAX_CONCURRENCY_LIMIT}.`);
  }
  return value;
}

function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  return host === "localhost" || host.endsWith(".localhost") || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Why this page cannot reach the gateway at all, or null. A page served over
 * https may not open ws:// to another host (mixed content); browsers make an
 * exception for the local machine only.
 */
export function mixedContentProblem(pageProtocol: string, socketUrl: string): string | null {
  const url = new URL(socketUrl);
  if (pageProtocol !== "https:" || url.protocol !== "ws:" || isLoopback(url.hostname)) return null;
  return (
    `This page is served over HTTPS, so the browser blocks the unencrypted ${url.protocol}//${url.host}. ` +
    "Serve the gateway over TLS and use its https:// or wss:// URL (see docs/browser-executor.md)."
  );
}

/** The subset of the Web Storage API used here. */
export interface KeyValueStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/**
 * A store that never throws. Sandboxed frames (AI Studio runs apps in one)
 * may deny storage; the page then works for this visit and remembers nothing.
 */
export function safeStore(open: () => KeyValueStore): KeyValueStore {
  const memory = new Map<string, string>();
  let backing: KeyValueStore | null = null;
  try {
    backing = open();
  } catch {
    backing = null;
  }
  return {
    getItem(key) {
      try {
        if (backing) return backing.getItem(key);
      } catch {
        // fall through to memory
      }
      return memory.get(key) ?? null;
    },
    setItem(key, value) {
      memory.set(key, value);
      try {
        backing?.setItem(key, value);
      } catch {
        // memory keeps it for this visit
      }
    },
    removeItem(key) {
      memory.delete(key);
      try {
        backing?.removeItem(key);
      } catch {
        // nothing more to do
      }
    },
  };
}

export function loadSettings(store: KeyValueStore): Settings {
  const raw = store.getItem(SETTINGS_KEY);
  if (!raw) return { ...DEFAULT_SETTINGS };
  try {
    const saved = JSON.parse(raw) as Partial<Settings>;
    return {
      server: typeof saved.server === "string" ? saved.server : "",
      token: typeof saved.token === "string" ? saved.token : "",
      upstream: typeof saved.upstream === "string" && saved.upstream ? saved.upstream : DEFAULT_UPSTREAM,
      maxConcurrency:
        typeof saved.maxConcurrency === "number" && saved.maxConcurrency >= 1
          ? Math.min(saved.maxConcurrency, MAX_CONCURRENCY_LIMIT)
          : DEFAULT_MAX_CONCURRENCY,
      label: typeof saved.label === "string" ? saved.label : "",
    };
  } catch {
    return { ...DEFAULT_SETTINGS };
  }
}

export function saveSettings(store: KeyValueStore, settings: Settings): void {
  store.setItem(SETTINGS_KEY, JSON.stringify(settings));
}

export function forgetSettings(store: KeyValueStore): void {
  store.removeItem(SETTINGS_KEY);
}
