/**
 * Executor protocol v1: the frames exchanged over the executor WebSocket.
 *
 * docs/executor-protocol.md is the normative text and executors/protocol.py
 * holds the gateway's definitions; the names here mirror both.
 */

import { METHODS, headerProblem, isTaskId, pathProblem, queryProblem } from "./taskChecks";

export const PROTOCOL_VERSION = 1;
export const SUBPROTOCOL = "gemproxy.v1";
// Browsers cannot set headers on a WebSocket; the token travels as a subprotocol.
export const TOKEN_SUBPROTOCOL_PREFIX = "gemproxy-token.";
export const WEBSOCKET_PATH = "/ws/executor";

// Raw bytes per body frame: base64 makes a frame about 4/3 of this, far under
// Daphne's 1 MiB limit on an incoming WebSocket message.
export const BODY_CHUNK_BYTES = 256 * 1024;
// The largest body a task may announce: 2 GiB, the Files API's limit per file.
export const MAX_BODY_CHUNKS = Math.floor((2 * 1024 * 1024 * 1024) / BODY_CHUNK_BYTES);

export const CLOSE_PROTOCOL_ERROR = 4002;
export const CLOSE_HEARTBEAT_MISSED = 4003;
export const CLOSE_ACCOUNT_DISABLED = 4004;
export const CLOSE_TOKEN_REPLACED = 4005;
// The gateway closes an executor whose error message is longer, or holds NUL or a lone surrogate.
export const MAX_MESSAGE_LENGTH = 2000;

/** `text` as an error frame's message the gateway accepts. */
export function errorMessage(text: string): string {
  return text.slice(0, MAX_MESSAGE_LENGTH).replace(/\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
}

// Used until a welcome tells us the gateway's own values (seconds).
export const DEFAULT_HEARTBEAT_INTERVAL = 15;
export const DEFAULT_HEARTBEAT_TIMEOUT = 60;
// Above this a heartbeat setting is taken as a mistake: timers cannot wait much longer (2^31 ms).
const MAX_HEARTBEAT_SECONDS = 3600;

export type ErrorCode = "upstream_unreachable" | "bad_task" | "cancelled" | "internal";

// Executor -> gateway

export interface Hello {
  type: "hello";
  protocol: number;
  executor_id: string;
  label: string;
  software: string;
  max_concurrency: number;
  /** What this executor can do beyond the baseline (docs/executor-protocol.md, "features"). */
  features?: string[];
}

/** Request bodies go upstream byte for byte: JSON as its text, anything else as a Blob of the pieces. */
export const FEATURE_BINARY_BODY = "binary_body";

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
  // The body's first piece (base64); the pieces after it are response_body from seq 0.
  data?: string;
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
  /** The gateway's id for the client's call, for the live log; absent when it sent none that fits. */
  request_id?: string;
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
  if (typeof value !== "string") throw new BadFrame(`${field} must be a string`, id);
  return value;
}

function count(frame: Json, field: string, id: string | null): number {
  const value = frame[field];
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
    throw new BadFrame(`${field} must be a non-negative integer`, id);
  }
  return value;
}

function seconds(frame: Json, field: string, fallback: number): number {
  const value = frame[field];
  return typeof value === "number" && Number.isFinite(value) && value > 0 && value <= MAX_HEARTBEAT_SECONDS
    ? value
    : fallback;
}

/** The task's id; a frame without a usable one names no task, so it cannot be answered. */
function taskId(frame: Json): string {
  if (!isTaskId(frame.id)) throw new BadFrame(`a ${String(frame.type)} frame without a valid task id`);
  return frame.id;
}

function headerMap(frame: Json, id: string): Record<string, string> {
  const value = frame.headers;
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) throw new BadFrame("headers must be an object", id);
  const result: Record<string, string> = {};
  for (const [name, item] of Object.entries(value as Json)) {
    const problem = headerProblem(name, item);
    if (problem) throw new BadFrame(problem, id);
    result[name.toLowerCase()] = item as string;
  }
  return result;
}

/** Refuses a task that would mean something else upstream than the gateway asked for. */
function checked(problem: string | null, id: string): void {
  if (problem) throw new BadFrame(problem, id);
}

const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

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
      const id = taskId(f);
      const method = typeof f.method === "string" ? f.method.toUpperCase() : "";
      if (!METHODS.has(method)) throw new BadFrame(`method must be one of ${[...METHODS].sort().join(", ")}`, id);
      // The URL is UPSTREAM + path + "?" + query, used as given: only strings that
      // no URL parser would rewrite, and that name no other host, path or key.
      const path = str(f, "path", id);
      const query = f.query === undefined || f.query === null ? "" : str(f, "query", id);
      const bodyChunks = count(f, "body_chunks", id);
      if (bodyChunks > MAX_BODY_CHUNKS) throw new BadFrame(`body_chunks must be at most ${MAX_BODY_CHUNKS}`, id);
      checked(pathProblem(path), id);
      checked(queryProblem(query), id);
      const request: TaskRequest = { type: "request", id, method, path, query, headers: headerMap(f, id), body_chunks: bodyChunks };
      // Only for the log: one that is not 1 to 128 visible ASCII characters is left out, not refused.
      if (typeof f.request_id === "string" && REQUEST_ID.test(f.request_id)) request.request_id = f.request_id;
      return request;
    }
    case "request_body": {
      const id = taskId(f);
      return { type: "request_body", id, seq: count(f, "seq", id), data: str(f, "data", id) };
    }
    case "cancel":
      return { type: "cancel", id: taskId(f) };
    default:
      return null;
  }
}

export function encodeFrame(frame: OutgoingFrame): string {
  return JSON.stringify(frame);
}
