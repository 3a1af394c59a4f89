/**
 * Stand-ins for the browser's WebSocket and fetch, driven step by step by tests.
 */

import type { WebSocketLike } from "../src/connection";
import type { FetchLike } from "../src/executor";
import type { OutgoingFrame } from "../src/protocol";

export class FakeSocket implements WebSocketLike {
  readyState = 0;
  bufferedAmount = 0;
  onopen: ((event: Event) => void) | null = null;
  onmessage: ((event: MessageEvent) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;
  readonly sent: string[] = [];
  closedWith: { code: number | undefined; reason: string | undefined } | null = null;

  constructor(
    readonly url: string,
    readonly protocols: string[],
  ) {}

  send(data: string): void {
    if (this.readyState !== 1) throw new Error("InvalidStateError: the socket is not open");
    this.sent.push(data);
  }

  close(code?: number, reason?: string): void {
    this.closedWith = { code, reason };
    this.readyState = 3;
  }

  // What the gateway and the network do:

  accept(): void {
    this.readyState = 1;
    this.onopen?.({} as Event);
  }

  receive(frame: object): void {
    this.onmessage?.({ data: JSON.stringify(frame) } as MessageEvent);
  }

  receiveText(text: string): void {
    this.onmessage?.({ data: text } as MessageEvent);
  }

  drop(code = 1006, reason = ""): void {
    this.readyState = 3;
    this.onclose?.({ code, reason, wasClean: false } as CloseEvent);
  }

  frames(): OutgoingFrame[] {
    return this.sent.map((text) => JSON.parse(text) as OutgoingFrame);
  }
}

/** A socket factory that remembers every socket it made. */
export function socketFactory() {
  const sockets: FakeSocket[] = [];
  const create = (url: string, protocols: string[]) => {
    const socket = new FakeSocket(url, protocols);
    sockets.push(socket);
    return socket;
  };
  return { sockets, create, last: () => sockets[sockets.length - 1]! };
}

/** A response body the test feeds piece by piece. */
export class ControlledBody {
  readonly stream: ReadableStream<Uint8Array>;
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  cancelled = false;

  constructor() {
    this.stream = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.controller = controller;
      },
      cancel: () => {
        this.cancelled = true;
      },
    });
  }

  push(bytes: Uint8Array | string): void {
    this.controller.enqueue(typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes);
  }

  end(): void {
    this.controller.close();
  }

  fail(error: Error): void {
    this.controller.error(error);
  }
}

export interface FetchCall {
  url: string;
  init: RequestInit;
  /** The bytes of the request body (a string as UTF-8, a Blob as its content), null without one. */
  bytes(): Promise<Uint8Array | null>;
  /** Answer the call. */
  respond(status: number, headers?: Record<string, string>, body?: ControlledBody | string | null): ControlledBody | null;
  /** Fail the call the way fetch does when the network is down. */
  refuse(message?: string): void;
}

/**
 * A fetch whose calls wait until the test answers them. Like the real one, it
 * rejects with an AbortError when the request's signal is aborted, and then
 * errors the body it was streaming.
 */
export function fakeFetch() {
  const calls: FetchCall[] = [];
  const fetch: FetchLike = (url, init) =>
    new Promise<Response>((resolve, reject) => {
      const signal = init.signal;
      let body: ControlledBody | null = null;
      const abortError = () => new DOMException("The operation was aborted.", "AbortError");
      signal?.addEventListener("abort", () => {
        reject(abortError());
        try {
          body?.fail(abortError());
        } catch {
          // already closed
        }
      });
      calls.push({
        url,
        init,
        bytes: () => bodyBytes(init.body),
        respond(status, headers = {}, given = null) {
          if (typeof given === "string") {
            const text = given;
            given = new ControlledBody();
            given.push(text);
            given.end();
          }
          body = given;
          resolve(new Response(given ? given.stream : null, { status, headers }));
          return given;
        },
        refuse(message = "Failed to fetch") {
          reject(new TypeError(message));
        },
      });
    });
  return { fetch, calls, last: () => calls[calls.length - 1]! };
}

async function bodyBytes(body: RequestInit["body"]): Promise<Uint8Array | null> {
  if (body === null || body === undefined) return null;
  if (typeof body === "string") return new TextEncoder().encode(body);
  if (body instanceof Blob) return new Uint8Array(await body.arrayBuffer());
  throw new Error(`the executor handed fetch a body of an unexpected type: ${Object.prototype.toString.call(body)}`);
}

/** Let pending promises and stream reads run. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
}

export function randomBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  // getRandomValues fills at most 64 KiB per call.
  for (let start = 0; start < length; start += 65536) {
    crypto.getRandomValues(bytes.subarray(start, Math.min(length, start + 65536)));
  }
  return bytes;
}
