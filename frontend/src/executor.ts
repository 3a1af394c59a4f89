/**
 * The tasks of one WebSocket session: receive a request and its body, perform
 * it with fetch against the upstream, stream the answer back, honour cancels.
 *
 * One Executor lives exactly as long as one socket. A task can therefore only
 * ever write to the socket it came from: after a reconnect, late pieces of an
 * old attempt have nowhere to go.
 */

import { decodeBase64, encodeBase64, splitBytes } from "./base64";
import { describeTask } from "./describe";
import { relayedResponseHeaders, upstreamRequestHeaders } from "./headers";
import {
  BODY_CHUNK_BYTES,
  type ErrorCode,
  errorMessage,
  type OutgoingFrame,
  type RequestBody,
  type ResponseStart,
  type TaskFrame,
  type TaskRequest,
} from "./protocol";
import { fetchBody } from "./requestBody";

export type TaskOutcome = "served" | "failed" | "cancelled";

export interface TaskStarted {
  id: string;
  method: string;
  model: string;
  operation: string;
  startedAt: number;
  /** The gateway's id for the client's call ("" when it sent none), to find the call in its log. */
  requestId: string;
}

export interface TaskFinished {
  id: string;
  outcome: TaskOutcome;
  /** The upstream's HTTP status, when it answered. */
  status: number | null;
  durationMs: number;
  /** Body bytes relayed to the gateway. */
  bytes: number;
  /** Why it failed or was cancelled; empty when served. */
  detail: string;
}

export interface TaskObserver {
  taskStarted(task: TaskStarted): void;
  taskFinished(task: TaskFinished): void;
}

export type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

export interface ExecutorOptions {
  /** The Gemini base URL, without a trailing slash. */
  upstream: string;
  maxConcurrency: number;
  /** Write a frame to this session's socket; false when the socket is gone. */
  send: (frame: OutgoingFrame) => boolean;
  observer: TaskObserver;
  /**
   * Looked up at call time, not captured at load: in AI Studio the
   * environment installs the fetch that authorises Gemini calls, and it may
   * do so after this module was loaded.
   */
  fetch?: FetchLike;
  /** Resolves when the socket has room for more; keeps a fast upstream from piling bytes into memory. */
  drained?: () => Promise<void>;
  now?: () => number;
}

interface Task {
  request: TaskRequest;
  controller: AbortController;
  pieces: Uint8Array[];
  running: boolean;
  startedAt: number;
  status: number | null;
  bytes: number;
}

const defaultFetch: FetchLike = (url, init) => globalThis.fetch(url, init);

export class Executor {
  private readonly tasks = new Map<string, Task>();
  private readonly fetch: FetchLike;
  private readonly drained: () => Promise<void>;
  private readonly now: () => number;

  constructor(private readonly options: ExecutorOptions) {
    this.fetch = options.fetch ?? defaultFetch;
    this.drained = options.drained ?? (() => Promise.resolve());
    this.now = options.now ?? Date.now;
  }

  get inFlight(): number {
    return this.tasks.size;
  }

  handle(frame: TaskFrame): void {
    switch (frame.type) {
      case "request":
        this.accept(frame);
        break;
      case "request_body":
        this.receiveBody(frame);
        break;
      case "cancel":
        this.cancel(frame.id);
        break;
    }
  }

  /** A task frame the gateway sent but we could not understand: fail its task, so it is retried elsewhere. */
  reject(id: string, message: string): void {
    const task = this.tasks.get(id);
    if (task) this.fail(task, "bad_task", message);
    else this.options.send({ type: "error", id, code: "bad_task", message: errorMessage(message) });
  }

  /** End every task: the socket they belong to is gone, and the gateway fails them over. */
  abandonAll(reason: string): void {
    for (const task of [...this.tasks.values()]) {
      task.controller.abort();
      this.finish(task, "failed", reason);
    }
  }

  private accept(request: TaskRequest): void {
    // A repeated request frame for a live attempt is a duplicate, not a new task.
    if (this.tasks.has(request.id)) return;
    this.options.send({ type: "ack", id: request.id });

    const task: Task = {
      request,
      controller: new AbortController(),
      pieces: [],
      running: false,
      startedAt: this.now(),
      status: null,
      bytes: 0,
    };
    const atCapacity = this.tasks.size >= this.options.maxConcurrency;
    this.tasks.set(request.id, task);
    this.options.observer.taskStarted({
      id: request.id,
      method: request.method,
      ...describeTask(request.method, request.path),
      startedAt: task.startedAt,
      requestId: request.request_id ?? "",
    });
    if (atCapacity) {
      // The gateway never sends more than max_concurrency, so this is a race or
      // a bug; answering at once lets it retry elsewhere instead of waiting.
      this.fail(task, "internal", `executor at capacity (${this.options.maxConcurrency} tasks)`);
      return;
    }
    if (request.body_chunks === 0) this.start(task);
  }

  private receiveBody(frame: RequestBody): void {
    const task = this.tasks.get(frame.id);
    if (!task || task.running) return;
    if (frame.seq !== task.pieces.length) {
      this.fail(task, "bad_task", `body piece ${frame.seq} arrived, expected ${task.pieces.length}`);
      return;
    }
    try {
      task.pieces.push(decodeBase64(frame.data));
    } catch {
      this.fail(task, "bad_task", `body piece ${frame.seq} is not padded standard base64`);
      return;
    }
    if (task.pieces.length === task.request.body_chunks) this.start(task);
  }

  private cancel(id: string): void {
    const task = this.tasks.get(id);
    if (!task) return;
    // Aborting is what stops the upstream call, and with it the quota it burns.
    task.controller.abort();
    this.finish(task, "cancelled", "cancelled by the gateway");
  }

  private start(task: Task): void {
    task.running = true;
    this.perform(task).catch((error: unknown) => {
      if (this.owns(task)) this.fail(task, "internal", describeError(error));
    });
  }

  private async perform(task: Task): Promise<void> {
    const { request } = task;
    const url = this.options.upstream + request.path + (request.query ? `?${request.query}` : "");
    let init: RequestInit;
    try {
      new URL(url);
      const headers = upstreamRequestHeaders(request.headers);
      const body = fetchBody(task.pieces, headers["content-type"], request.method);
      task.pieces = [];
      // Only what the AI Studio relays set: no credentials or cache mode, which
      // AI Studio's own fetch wrapper may need to choose for itself.
      init = { method: request.method, headers, body, signal: task.controller.signal };
    } catch (error) {
      this.fail(task, "bad_task", `cannot build the request: ${describeError(error)}`);
      return;
    }

    let response: Response;
    try {
      response = await this.fetch(url, init);
    } catch (error) {
      if (this.owns(task)) this.fail(task, "upstream_unreachable", describeError(error));
      return;
    }
    if (!this.owns(task)) return;

    task.status = response.status;
    const head: ResponseStart = {
      type: "response_start",
      id: request.id,
      status: response.status,
      headers: relayedResponseHeaders(response.headers),
    };
    // The head waits for the body's first piece and leaves with it: one frame
    // fewer before the client's first byte (the task was acknowledged already).
    let headSent = false;
    let seq = 0;
    const reader = response.body?.getReader();
    if (reader) {
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (error) {
          if (this.owns(task)) this.fail(task, "upstream_unreachable", `reading the answer failed: ${describeError(error)}`);
          return;
        }
        if (!this.owns(task)) {
          reader.cancel().catch(() => undefined);
          return;
        }
        if (chunk.done) break;
        // Each piece goes out as soon as it is read: streams must reach the client as they happen.
        for (const piece of splitBytes(chunk.value, BODY_CHUNK_BYTES)) {
          const data = encodeBase64(piece);
          const frame: OutgoingFrame = headSent
            ? { type: "response_body", id: request.id, seq: seq++, data }
            : { ...head, data };
          if (!this.send(task, frame)) return;
          headSent = true;
          task.bytes += piece.length;
        }
        await this.drained();
        if (!this.owns(task)) {
          reader.cancel().catch(() => undefined);
          return;
        }
      }
    }
    if (!headSent && !this.send(task, head)) return;
    if (!this.send(task, { type: "response_end", id: request.id, chunks: seq })) return;
    this.finish(task, "served", "");
  }

  /** Send a frame for a task; when the socket is gone, the task ends with it. */
  private send(task: Task, frame: OutgoingFrame): boolean {
    if (this.options.send(frame)) return true;
    task.controller.abort();
    this.finish(task, "failed", "connection lost");
    return false;
  }

  private fail(task: Task, code: ErrorCode, message: string): void {
    task.controller.abort();
    this.options.send({ type: "error", id: task.request.id, code, message: errorMessage(message) });
    this.finish(task, "failed", message);
  }

  private finish(task: Task, outcome: TaskOutcome, detail: string): void {
    if (!this.owns(task)) return;
    this.tasks.delete(task.request.id);
    this.options.observer.taskFinished({
      id: task.request.id,
      outcome,
      status: task.status,
      durationMs: this.now() - task.startedAt,
      bytes: task.bytes,
      detail,
    });
  }

  /** Whether the task is still ours to answer: not cancelled, failed or finished. */
  private owns(task: Task): boolean {
    return this.tasks.get(task.request.id) === task;
  }
}

export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}
