/**
 * Executor protocol v1: the frames exchanged over the executor WebSocket.
 *
 * docs/executor-protocol.md is the normative text and executors/protocol.py
 * holds the gateway's definitions; the names here mirror both.
 */

export const PROTOCOL_VERSION = 1;
export const SUBPROTOCOL = "gemproxy.v1";
// Browsers cannot set headers on a WebSocket; the token travels as a subprotocol.
export const TOKEN_SUBPROTOCOL_PREFIX = "gemproxy-token.";
export const WEBSOCKET_PATH = "/ws/executor";

// Raw bytes per body frame: base64 makes a frame about 4/3 of this, far under
// Daphne's 1 MiB limit on an incoming WebSocket message.
export const BODY_CHUNK_BYTES = 256 * 1024;

export const CLOSE_PROTOCOL_ERROR = 4002;
export const CLOSE_HEARTBEAT_MISSED = 4003;
export const CLOSE_ACCOUNT_DISABLED = 4004;

// Used until a welcome tells us the gateway's own values (seconds).
export const DEFAULT_HEARTBEAT_INTERVAL = 15;
export const DEFAULT_HEARTBEAT_TIMEOUT = 60;

export type ErrorCode = "upstream_unreachable" | "bad_task" | "cancelled" | "internal";

// Executor -> gateway

export interface Hello {
  type: "hello";
  protocol: number;
  executor_id: string;
  label: string;
  software: string;
  max_concurrency: number;
}

export interface Pong {
  type: "pong";
  nonce: string;
}

export interface Ack {
  type: "ack";
  id: string;
}

export interface ResponseStart {
  type: "response_start";
  id: string;
  status: number;
  headers: Record<string, string>;
}

export interface ResponseBody {
  type: "response_body";
  id: string;
  seq: number;
  data: string; // base64
}

export interface ResponseEnd {
  type: "response_end";
  id: string;
  chunks: number;
}

export interface ErrorFrame {
  type: "error";
  id: string;
  code: ErrorCode;
  message: string;
}

export type OutgoingFrame = Hello | Pong | Ack | ResponseStart | ResponseBody | ResponseEnd | ErrorFrame;

// Gateway -> executor

export interface Welcome {
  type: "welcome";
  protocol: number;
  executor_id: string;
  account: string;
  heartbeat_interval: number;
  heartbeat_timeout: number;
}

export interface Ping {
  type: "ping";
  nonce: string;
}

export interface TaskRequest {
  type: "request";
  id: string;
  method: string;
  path: string;
  query: string;
  headers: Record<string, string>;
  body_chunks: number;
}

export interface RequestBody {
  type: "request_body";
  id: string;
  seq: number;
  data: string; // base64
}

export interface Cancel {
  type: "cancel";
  id: string;
}

export type TaskFrame = TaskRequest | RequestBody | Cancel;
export type IncomingFrame = Welcome | Ping | TaskFrame;

/** A frame we could not use. `id` is set when it names a task, so the task can be failed with `bad_task`. */
export class BadFrame extends Error {
  constructor(
    message: string,
    readonly id: string | null = null,
  ) {
    super(message);
    this.name = "BadFrame";
  }
}

type Json = Record<string, unknown>;

function str(frame: Json, field: string, id: string | null): string {
  const value = frame[field];
  if (typeof value !== "string") throw new BadFrame(`'${field}' must be a string`, id);
  return value;
}

function count(frame: Json, field: string, id: string | null): number {
  const value = frame[field];
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
    throw new BadFrame(`'${field}' must be a non-negative integer`, id);
  }
  return value;
}

function seconds(frame: Json, field: string, fallback: number): number {
  const value = frame[field];
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? value : fallback;
}

function stringMap(frame: Json, field: string, id: string): Record<string, string> {
  const value = frame[field];
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) throw new BadFrame(`'${field}' must be an object`, id);
  const result: Record<string, string> = {};
  for (const [name, item] of Object.entries(value as Json)) {
    if (typeof item !== "string") throw new BadFrame(`header '${name}' must be a string`, id);
    result[name.toLowerCase()] = item;
  }
  return result;
}

/**
 * Parse one text frame from the gateway.
 *
 * Returns null for a frame of a type this executor does not know: the
 * protocol says such frames are ignored, so the gateway can add types later.
 * Throws BadFrame for anything malformed.
 */
export function parseFrame(text: string): IncomingFrame | null {
  let frame: unknown;
  try {
    frame = JSON.parse(text);
  } catch {
    throw new BadFrame("a frame must be JSON");
  }
  if (typeof frame !== "object" || frame === null || Array.isArray(frame)) {
    throw new BadFrame("a frame must be a JSON object");
  }
  const f = frame as Json;
  if (typeof f.type !== "string") throw new BadFrame("a frame needs a string 'type'");

  switch (f.type) {
    case "welcome":
      return {
        type: "welcome",
        protocol: typeof f.protocol === "number" ? f.protocol : PROTOCOL_VERSION,
        executor_id: typeof f.executor_id === "string" ? f.executor_id : "",
        account: typeof f.account === "string" ? f.account : "",
        heartbeat_interval: seconds(f, "heartbeat_interval", DEFAULT_HEARTBEAT_INTERVAL),
        heartbeat_timeout: seconds(f, "heartbeat_timeout", DEFAULT_HEARTBEAT_TIMEOUT),
      };
    case "ping":
      // The nonce is echoed back verbatim; a number is tolerated and echoed as text.
      return { type: "ping", nonce: f.nonce === undefined ? "" : String(f.nonce) };
    case "request": {
      const id = str(f, "id", null);
      const path = str(f, "path", id);
      // The URL is UPSTREAM + path: a path not starting with "/" could change the
      // host ("@evil.example/..."), so it is refused rather than used.
      if (!path.startsWith("/")) throw new BadFrame("'path' must start with '/'", id);
      const query = f.query === undefined || f.query === null ? "" : str(f, "query", id);
      return {
        type: "request",
        id,
        method: str(f, "method", id).toUpperCase(),
        path,
        query,
        headers: stringMap(f, "headers", id),
        body_chunks: count(f, "body_chunks", id),
      };
    }
    case "request_body": {
      const id = str(f, "id", null);
      return { type: "request_body", id, seq: count(f, "seq", id), data: str(f, "data", id) };
    }
    case "cancel":
      return { type: "cancel", id: str(f, "id", null) };
    default:
      return null;
  }
}

export function encodeFrame(frame: OutgoingFrame): string {
  return JSON.stringify(frame);
}
