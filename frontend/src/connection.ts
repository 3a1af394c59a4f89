/**
 * The executor's link to the gateway: open the WebSocket, say hello, answer
 * pings, hand tasks to an Executor, notice a dead link, and reconnect forever.
 *
 * Heartbeats are driven by the gateway because browsers throttle timers in
 * background tabs but still deliver messages. The only timer here is a
 * watchdog with a generous deadline, so a late timer does no harm.
 */

import { backoffDelayMs } from "./backoff";
import { Executor, describeError, type FetchLike, type TaskObserver } from "./executor";
import {
  BadFrame,
  CLOSE_ACCOUNT_DISABLED,
  CLOSE_HEARTBEAT_MISSED,
  CLOSE_PROTOCOL_ERROR,
  CLOSE_TOKEN_REPLACED,
  FEATURE_BINARY_BODY,
  PROTOCOL_VERSION,
  SUBPROTOCOL,
  TOKEN_SUBPROTOCOL_PREFIX,
  encodeFrame,
  parseFrame,
  type OutgoingFrame,
} from "./protocol";

/** The part of the browser's WebSocket this module uses, so tests can supply a fake. */
export interface WebSocketLike {
  readonly readyState: number;
  readonly bufferedAmount: number;
  onopen: ((event: Event) => void) | null;
  onmessage: ((event: MessageEvent) => void) | null;
  onclose: ((event: CloseEvent) => void) | null;
  onerror: ((event: Event) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type SocketFactory = (url: string, protocols: string[]) => WebSocketLike;

const OPEN = 1;

export interface ConnectionTarget {
  /** ws:// or wss:// URL of the gateway's executor endpoint. */
  socketUrl: string;
  token: string;
  /** Gemini base URL without a trailing slash. */
  upstream: string;
  maxConcurrency: number;
  label: string;
  executorId: string;
  software: string;
}

export type ConnectionStatus =
  | { state: "idle" }
  | { state: "connecting"; url: string }
  | { state: "connected"; url: string; account: string; since: number }
  | { state: "disconnected"; url: string; reason: string; refused: boolean; retryAt: number }
  | { state: "blocked"; reason: string }
  | { state: "stopped" };

export interface ConnectionObserver extends TaskObserver {
  statusChanged(status: ConnectionStatus): void;
}

export interface ConnectionOptions {
  observer: ConnectionObserver;
  createSocket?: SocketFactory;
  /** Whether anything answers HTTP at the URL: tells a refused token from an unreachable gateway. */
  probe?: (httpUrl: string) => Promise<boolean>;
  fetch?: FetchLike;
  random?: () => number;
  /** One line about a frame that was refused or ignored; the browser console by default. */
  log?: (line: string) => void;
}

// A socket that has not been welcomed this long after we created it is given up.
export const HANDSHAKE_TIMEOUT_MS = 20_000;
// Above this much unsent data, stop reading the upstream until the socket drains.
const SEND_HIGH_WATER_BYTES = 4 * 1024 * 1024;
const DRAIN_POLL_MS = 25;
const PROBE_TIMEOUT_MS = 5_000;

interface Session {
  ws: WebSocketLike;
  executor: Executor | null;
  opened: boolean;
  welcomed: boolean;
  lastHeard: number;
  deadlineMs: number;
  watchdog: ReturnType<typeof setTimeout> | undefined;
}

export class Connection {
  private target: ConnectionTarget | null = null;
  private session: Session | null = null;
  private attempt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  // Bumped by start() and stop(), so an old socket's late events change nothing.
  private generation = 0;
  private readonly createSocket: SocketFactory;
  private readonly probe: (httpUrl: string) => Promise<boolean>;
  private readonly random: () => number;
  private readonly log: (line: string) => void;

  constructor(private readonly options: ConnectionOptions) {
    this.createSocket = options.createSocket ?? ((url, protocols) => new WebSocket(url, protocols));
    this.probe = options.probe ?? probeHttp;
    this.random = options.random ?? Math.random;
    this.log = options.log ?? ((line) => console.warn(`gemproxy executor: ${line}`));
  }

  start(target: ConnectionTarget): void {
    this.halt("replaced by new settings");
    this.target = target;
    this.attempt = 0;
    this.open();
  }

  stop(): void {
    this.halt("stopped");
    this.target = null;
    this.report({ state: "stopped" });
  }

  /** Show why connecting is pointless (say, a ws:// gateway from an https page) and do not try. */
  block(reason: string): void {
    this.halt("blocked");
    this.target = null;
    this.report({ state: "blocked", reason });
  }

  /** Skip the rest of a backoff wait, for example when the browser comes back online. */
  retryNow(): void {
    if (this.target && !this.session && this.retryTimer !== undefined) {
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      this.open();
    }
  }

  private halt(reason: string): void {
    this.generation += 1;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const session = this.session;
    if (session) {
      this.endSession(session, reason);
      session.ws.close(1000, reason);
    }
  }

  private open(): void {
    const target = this.target;
    if (!target) return;
    this.retryTimer = undefined;
    this.report({ state: "connecting", url: target.socketUrl });

    let ws: WebSocketLike;
    try {
      ws = this.createSocket(target.socketUrl, [SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX + target.token]);
    } catch (error) {
      // The constructor throws for a malformed URL or token, or a connection
      // the page may not make (mixed content): retrying cannot help.
      this.block(`the browser will not open ${target.socketUrl}: ${describeError(error)}`);
      return;
    }
    const session: Session = {
      ws,
      executor: null,
      opened: false,
      welcomed: false,
      lastHeard: Date.now(),
      deadlineMs: HANDSHAKE_TIMEOUT_MS,
      watchdog: undefined,
    };
    this.session = session;
    ws.onopen = () => this.opened(session, target);
    ws.onmessage = (event) => this.received(session, event.data);
    ws.onclose = (event) => void this.closed(session, event);
    ws.onerror = () => undefined; // always followed by close, which says more
    this.watch(session);
  }

  private opened(session: Session, target: ConnectionTarget): void {
    if (this.session !== session) return;
    session.opened = true;
    session.lastHeard = Date.now();
    session.executor = new Executor({
      upstream: target.upstream,
      maxConcurrency: target.maxConcurrency,
      send: (frame) => this.send(session, frame),
      drained: () => this.drained(session),
      observer: this.options.observer,
      ...(this.options.fetch ? { fetch: this.options.fetch } : {}),
    });
    this.send(session, {
      type: "hello",
      protocol: PROTOCOL_VERSION,
      executor_id: target.executorId,
      label: target.label,
      software: target.software,
      max_concurrency: target.maxConcurrency,
      features: [FEATURE_BINARY_BODY],
    });
  }

  private received(session: Session, data: unknown): void {
    if (this.session !== session) return;
    session.lastHeard = Date.now();
    if (typeof data !== "string") {
      this.log("ignoring a binary frame: the protocol uses text frames only");
      return;
    }
    let frame;
    try {
      frame = parseFrame(data);
    } catch (error) {
      // Whatever the gateway sent costs at most the task it names, never this connection.
      if (error instanceof BadFrame && error.id !== null) {
        this.log(`refused task ${error.id}: ${error.message}`);
        session.executor?.reject(error.id, error.message);
      } else {
        this.log(`ignoring a frame: ${describeError(error)}`);
      }
      return;
    }
    if (frame === null) return;
    switch (frame.type) {
      case "ping":
        this.send(session, { type: "pong", nonce: frame.nonce });
        break;
      case "welcome":
        session.welcomed = true;
        session.deadlineMs = (frame.heartbeat_interval + frame.heartbeat_timeout) * 1000;
        this.attempt = 0;
        this.report({
          state: "connected",
          url: this.target?.socketUrl ?? "",
          account: frame.account,
          since: Date.now(),
        });
        break;
      default:
        try {
          session.executor?.handle(frame);
        } catch (error) {
          this.log(`a ${frame.type} frame could not be handled: ${describeError(error)}`);
          session.executor?.reject(frame.id, "the executor could not handle this frame");
        }
    }
  }

  private async closed(session: Session, event: CloseEvent): Promise<void> {
    if (this.session !== session) return;
    this.endSession(session, "connection lost");
    const generation = this.generation;

    let reason: string;
    let refused = false;
    if (!session.opened) {
      // A browser reports every failed handshake alike (code 1006); asking
      // over plain HTTP tells "nobody there" from "somebody said no".
      const reachable = await this.probe(httpUrlOf(this.target?.socketUrl ?? ""));
      if (generation !== this.generation) return;
      refused = reachable;
      reason = reachable
        ? "token refused: the gateway declined this executor token (or a proxy in front of it does not pass WebSockets)"
        : "gateway unreachable";
    } else if (event.code === CLOSE_ACCOUNT_DISABLED) {
      reason = "the executor account is disabled";
      refused = true;
    } else if (event.code === CLOSE_TOKEN_REPLACED) {
      reason = "this executor token was replaced: paste the new one";
      refused = true;
    } else if (event.code === CLOSE_PROTOCOL_ERROR) {
      reason = `the gateway reported a protocol error${event.reason ? `: ${event.reason}` : ""}`;
    } else if (event.code === CLOSE_HEARTBEAT_MISSED) {
      reason = "the gateway heard nothing from this tab in time";
    } else {
      reason = `connection lost (code ${event.code}${event.reason ? `, ${event.reason}` : ""})`;
    }
    this.retryLater(reason, refused);
  }

  private watch(session: Session): void {
    const elapsed = Date.now() - session.lastHeard;
    if (elapsed >= session.deadlineMs) {
      const seconds = Math.round(session.deadlineMs / 1000);
      this.endSession(session, "connection lost");
      // A dead network can keep the closing handshake waiting for minutes; do not wait for it.
      session.ws.close(1000, "gateway silent");
      this.retryLater(
        session.welcomed ? `no message from the gateway for ${seconds} s` : `no answer from the gateway within ${seconds} s`,
        false,
      );
      return;
    }
    session.watchdog = setTimeout(() => {
      if (this.session === session) this.watch(session);
    }, session.deadlineMs - elapsed);
  }

  private retryLater(reason: string, refused: boolean): void {
    const target = this.target;
    if (!target) return;
    const delay = backoffDelayMs(this.attempt, this.random);
    this.attempt += 1;
    this.report({ state: "disconnected", url: target.socketUrl, reason, refused, retryAt: Date.now() + delay });
    this.retryTimer = setTimeout(() => this.open(), delay);
  }

  private endSession(session: Session, reason: string): void {
    clearTimeout(session.watchdog);
    session.ws.onopen = null;
    session.ws.onmessage = null;
    session.ws.onclose = null;
    session.ws.onerror = null;
    if (this.session === session) this.session = null;
    session.executor?.abandonAll(reason);
    session.executor = null;
  }

  private send(session: Session, frame: OutgoingFrame): boolean {
    if (this.session !== session || session.ws.readyState !== OPEN) return false;
    try {
      session.ws.send(encodeFrame(frame));
      return true;
    } catch {
      return false;
    }
  }

  private drained(session: Session): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        const { ws } = session;
        if (ws.bufferedAmount <= SEND_HIGH_WATER_BYTES || ws.readyState !== OPEN || this.session !== session) {
          resolve();
        } else {
          setTimeout(check, DRAIN_POLL_MS);
        }
      };
      check();
    });
  }

  private report(status: ConnectionStatus): void {
    this.options.observer.statusChanged(status);
  }
}

/** The http(s) URL of the same endpoint as a ws(s) URL. */
export function httpUrlOf(socketUrl: string): string {
  return socketUrl.replace(/^ws(s?):/i, "http$1:");
}

/**
 * Whether anything answers HTTP at `url`. An opaque (no-cors) request
 * resolves for any HTTP answer and rejects only when nothing answered.
 */
export async function probeHttp(url: string): Promise<boolean> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), PROBE_TIMEOUT_MS);
  try {
    await fetch(url, { mode: "no-cors", cache: "no-store", credentials: "omit", signal: controller.signal });
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
