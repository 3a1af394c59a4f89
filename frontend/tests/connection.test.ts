import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { Connection, HANDSHAKE_TIMEOUT_MS, httpUrlOf, type ConnectionStatus, type ConnectionTarget } from "../src/connection";
import type { TaskFinished } from "../src/executor";
import { fakeFetch, settle, socketFactory } from "./fakes";

const TARGET: ConnectionTarget = {
  socketUrl: "wss://gw.test/ws/executor",
  token: "gpe_secret-token",
  upstream: "https://upstream.test",
  maxConcurrency: 3,
  label: "browser tab 1234",
  executorId: "5b0c0f0e-0000-4000-8000-000000000001",
  software: "gemproxy-web/1.0.0",
};

const WELCOME = {
  type: "welcome",
  protocol: 1,
  executor_id: TARGET.executorId,
  account: "ana@example.com",
  heartbeat_interval: 15,
  heartbeat_timeout: 60,
};

function connection({ reachable = false, random = (): number => 0.5 } = {}) {
  const statuses: ConnectionStatus[] = [];
  const finished: TaskFinished[] = [];
  const sockets = socketFactory();
  const upstream = fakeFetch();
  const probes: string[] = [];
  const logged: string[] = [];
  const subject = new Connection({
    observer: {
      statusChanged: (status) => statuses.push(status),
      taskStarted: () => undefined,
      taskFinished: (task) => finished.push(task),
    },
    createSocket: sockets.create,
    fetch: upstream.fetch,
    probe: async (url) => {
      probes.push(url);
      return reachable;
    },
    random,
    log: (line) => logged.push(line),
  });
  return {
    subject,
    statuses,
    finished,
    sockets,
    upstream,
    probes,
    logged,
    status: () => statuses[statuses.length - 1]!,
  };
}

function connected(x: ReturnType<typeof connection>) {
  x.subject.start(TARGET);
  const socket = x.sockets.last();
  socket.accept();
  socket.receive(WELCOME);
  return socket;
}

beforeEach(() => {
  // setImmediate stays real so settle() can let promises run.
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date"] });
});

afterEach(() => {
  vi.useRealTimers();
});

describe("connecting", () => {
  it("offers the protocol and the token as subprotocols", () => {
    const x = connection();
    x.subject.start(TARGET);
    expect(x.sockets.last().url).toBe("wss://gw.test/ws/executor");
    expect(x.sockets.last().protocols).toEqual(["gemproxy.v1", "gemproxy-token.gpe_secret-token"]);
    expect(x.status()).toEqual({ state: "connecting", url: TARGET.socketUrl });
  });

  it("says hello first, with this tab's id, label, software and concurrency", () => {
    const x = connection();
    x.subject.start(TARGET);
    x.sockets.last().accept();
    expect(x.sockets.last().frames()).toEqual([
      {
        type: "hello",
        protocol: 1,
        executor_id: TARGET.executorId,
        label: "browser tab 1234",
        software: "gemproxy-web/1.0.0",
        max_concurrency: 3,
        features: ["binary_body"],
      },
    ]);
  });

  it("is connected once welcomed, with the account's label", () => {
    const x = connection();
    connected(x);
    expect(x.status()).toMatchObject({ state: "connected", account: "ana@example.com" });
  });

  it("answers every ping with a pong carrying its nonce", () => {
    const x = connection();
    const socket = connected(x);
    socket.receive({ type: "ping", nonce: "17" });
    socket.receive({ type: "ping", nonce: "18" });
    expect(socket.frames().slice(1)).toEqual([
      { type: "pong", nonce: "17" },
      { type: "pong", nonce: "18" },
    ]);
  });

  it("ignores frames of unknown types and unknown fields", () => {
    const x = connection();
    const socket = connected(x);
    socket.receive({ type: "news", text: "hi" });
    socket.receive({ type: "ping", nonce: "1", extra: true });
    socket.receiveText("not json");
    expect(socket.frames().slice(1)).toEqual([{ type: "pong", nonce: "1" }]);
    expect(x.status().state).toBe("connected");
  });

  it("hands tasks to the executor and relays its frames", async () => {
    const x = connection();
    const socket = connected(x);
    socket.receive({
      type: "request",
      id: "t1",
      method: "GET",
      path: "/v1beta/models",
      query: "",
      headers: {},
      body_chunks: 0,
    });
    await settle();
    expect(x.upstream.last().url).toBe("https://upstream.test/v1beta/models");
    x.upstream.last().respond(200, { "content-type": "application/json" }, "{}");
    await settle();
    expect(socket.frames().map((frame) => frame.type)).toEqual([
      "hello",
      "ack",
      "response_start",
      "response_end",
    ]);
    expect(socket.frames()[2]).toMatchObject({ type: "response_start", data: "e30=" }); // the body, with its head
  });

  it("answers a malformed request with bad_task", () => {
    const x = connection();
    const socket = connected(x);
    socket.receive({ type: "request", id: "t1", method: "GET", path: "no-slash", headers: {}, body_chunks: 0 });
    expect(socket.frames().at(-1)).toEqual({
      type: "error",
      id: "t1",
      code: "bad_task",
      message: "path must start with /v1/, /v1beta/ or /v1alpha/ (or /upload/ or /download/ before them)",
    });
  });
});

describe("reconnecting", () => {
  it("reconnects by itself after the socket closes, with the same id", async () => {
    const x = connection({ random: () => 0.5 });
    const first = connected(x);
    first.drop(1006);
    await settle();
    expect(x.status()).toMatchObject({ state: "disconnected", reason: "connection lost (code 1006)" });
    expect(x.sockets.sockets).toHaveLength(1);

    // attempt 0 waits random * 0.5 s
    vi.advanceTimersByTime(250);
    expect(x.sockets.sockets).toHaveLength(2);
    const second = x.sockets.last();
    second.accept();
    expect(second.frames()[0]).toMatchObject({ type: "hello", executor_id: TARGET.executorId });
  });

  it("waits longer after each failure, up to 30 s, and starts over after a welcome", async () => {
    const x = connection({ random: () => 0.999 });
    x.subject.start(TARGET);
    const waits: number[] = [];
    for (let attempt = 0; attempt < 9; attempt++) {
      x.sockets.last().drop(1006);
      await settle();
      const status = x.status();
      if (status.state !== "disconnected") throw new Error(`expected disconnected, got ${status.state}`);
      waits.push(status.retryAt - Date.now());
      vi.advanceTimersByTime(status.retryAt - Date.now());
    }
    expect(waits).toEqual([499, 999, 1998, 3996, 7992, 15984, 29970, 29970, 29970]);

    const socket = x.sockets.last();
    socket.accept();
    socket.receive(WELCOME);
    socket.drop(1006);
    await settle();
    const status = x.status();
    expect(status.state === "disconnected" && status.retryAt - Date.now()).toBe(499);
  });

  it("says the token was refused when the gateway answers HTTP but not the handshake", async () => {
    const x = connection({ reachable: true });
    x.subject.start(TARGET);
    x.sockets.last().drop(1006);
    await settle();
    expect(x.probes).toEqual(["https://gw.test/ws/executor"]);
    expect(x.status()).toMatchObject({ state: "disconnected", refused: true });
    expect((x.status() as { reason: string }).reason).toMatch(/^token refused/);
  });

  it("says the gateway is unreachable when nothing answers", async () => {
    const x = connection({ reachable: false });
    x.subject.start(TARGET);
    x.sockets.last().drop(1006);
    await settle();
    expect(x.status()).toMatchObject({ state: "disconnected", refused: false, reason: "gateway unreachable" });
  });

  it("says so when the executor account was disabled", async () => {
    const x = connection();
    connected(x).drop(4004, "account disabled");
    await settle();
    expect(x.status()).toMatchObject({ state: "disconnected", refused: true, reason: "the executor account is disabled" });
  });

  it("keeps retrying forever", async () => {
    const x = connection({ random: () => 1 });
    x.subject.start(TARGET);
    for (let attempt = 0; attempt < 50; attempt++) {
      x.sockets.last().drop(1006);
      await settle();
      const status = x.status();
      if (status.state !== "disconnected") throw new Error(`expected disconnected, got ${status.state}`);
      vi.advanceTimersByTime(status.retryAt - Date.now());
    }
    expect(x.sockets.sockets).toHaveLength(51);
    expect(x.status().state).toBe("connecting");
  });

  it("retries at once when asked, instead of waiting out the backoff", async () => {
    const x = connection({ random: () => 1 });
    connected(x).drop(1006);
    await settle();
    x.subject.retryNow();
    expect(x.sockets.sockets).toHaveLength(2);
  });

  it("stops for good when stopped", async () => {
    const x = connection();
    const socket = connected(x);
    x.subject.stop();
    expect(socket.closedWith?.code).toBe(1000);
    expect(x.status()).toEqual({ state: "stopped" });
    vi.advanceTimersByTime(120_000);
    expect(x.sockets.sockets).toHaveLength(1);
  });
});

describe("a dead connection", () => {
  it("is noticed when nothing arrives for heartbeat_interval + heartbeat_timeout", async () => {
    const x = connection();
    const socket = connected(x);
    vi.advanceTimersByTime(74_000);
    expect(x.status().state).toBe("connected");
    vi.advanceTimersByTime(1_000);
    expect(socket.closedWith).not.toBeNull();
    expect(x.status()).toMatchObject({ state: "disconnected", reason: "no message from the gateway for 75 s" });
  });

  it("is not assumed while pings keep coming, however long", () => {
    const x = connection();
    const socket = connected(x);
    for (let i = 0; i < 40; i++) {
      vi.advanceTimersByTime(15_000);
      socket.receive({ type: "ping", nonce: String(i) });
    }
    expect(socket.closedWith).toBeNull();
    expect(x.status().state).toBe("connected");
  });

  it("is noticed when a socket never opens", () => {
    const x = connection();
    x.subject.start(TARGET);
    vi.advanceTimersByTime(HANDSHAKE_TIMEOUT_MS);
    expect(x.sockets.last().closedWith).not.toBeNull();
    expect(x.status()).toMatchObject({ state: "disconnected" });
  });

  it("takes its tasks with it: their fetches are aborted", async () => {
    const x = connection();
    const socket = connected(x);
    socket.receive({ type: "request", id: "t1", method: "GET", path: "/v1beta/models", query: "", headers: {}, body_chunks: 0 });
    await settle();
    const call = x.upstream.last();
    socket.drop(1006);
    await settle();
    expect(call.init.signal!.aborted).toBe(true);
    expect(x.finished).toMatchObject([{ id: "t1", outcome: "failed" }]);
  });

  it("never lets an old task write to the new socket", async () => {
    const x = connection({ random: () => 0 });
    const first = connected(x);
    first.receive({ type: "request", id: "t1", method: "GET", path: "/v1beta/models", query: "", headers: {}, body_chunks: 0 });
    await settle();
    const late = x.upstream.last();
    first.drop(1006);
    await settle();
    vi.advanceTimersByTime(0);
    const second = x.sockets.last();
    second.accept();
    second.receive(WELCOME);
    late.respond(200, {}, "late answer");
    await settle();
    expect(second.frames().map((frame) => frame.type)).toEqual(["hello"]);
  });
});

describe("surviving hostile frames from the gateway side", () => {
  const GOOD = { type: "request", method: "GET", path: "/v1beta/models", query: "", headers: {}, body_chunks: 0 };

  /** The socket is still open and this connection still answers pings and performs tasks. */
  async function stillServing(x: ReturnType<typeof connection>, socket: ReturnType<typeof connected>) {
    const calls = x.upstream.calls.length;
    socket.receive({ type: "ping", nonce: "still-here" });
    expect(socket.frames().at(-1)).toEqual({ type: "pong", nonce: "still-here" });
    socket.receive({ ...GOOD, id: "after" });
    await settle();
    expect(x.upstream.calls).toHaveLength(calls + 1);
    x.upstream.last().respond(200, { "content-type": "application/json" }, "{}");
    await settle();
    expect(socket.frames().at(-1)).toEqual({ type: "response_end", id: "after", chunks: 0 }); // the body rode with the head
    expect(socket.closedWith).toBeNull();
    expect(x.sockets.sockets).toHaveLength(1);
    expect(x.status().state).toBe("connected");
  }

  it.each([
    ["a path with a NUL", { path: "/v1beta/models/gemini\u0000:generateContent" }],
    ["a path with non-ASCII", { path: "/v1beta/models/gemini-\u00fc:generateContent" }],
    ["a path with a question mark", { path: "/v1beta/models/gemini?alt=x:generateContent" }],
    ["a query with a key", { query: "alt=sse&%6Bey=client-key" }],
    ["a header with CR LF", { headers: { "x-a": "1\r\nx-forged: 1" } }],
    ["a huge body_chunks", { body_chunks: 1e12 }],
    ["no method", { method: undefined }],
  ])("answers bad_task for %s, logs one line and calls no upstream", async (_, fields) => {
    const x = connection();
    const socket = connected(x);
    socket.receive({ ...GOOD, id: "t1", ...fields });
    expect(socket.frames().at(-1)).toMatchObject({ type: "error", id: "t1", code: "bad_task" });
    expect(x.logged).toHaveLength(1);
    expect(x.logged[0]).toMatch(/^refused task t1: /);
    expect(x.logged[0]).not.toContain("client-key");
    await settle();
    expect(x.upstream.calls).toHaveLength(0);
    await stillServing(x, socket);
  });

  it.each([
    ["a request without an id", { ...GOOD }],
    ["a request with an id that is a list", { ...GOOD, id: ["x"] }],
    ["a request with an empty id", { ...GOOD, id: "" }],
    ["a request with a huge id", { ...GOOD, id: "x".repeat(10_000) }],
    ["a body piece with an object id", { type: "request_body", id: { a: 1 }, seq: 0, data: "" }],
    ["a cancel with a numeric id", { type: "cancel", id: 17 }],
  ])("ignores %s with one log line", async (_, frame) => {
    const x = connection();
    const socket = connected(x);
    const sent = socket.frames().length;
    socket.receive(frame);
    expect(socket.frames()).toHaveLength(sent);
    expect(x.logged).toEqual([`ignoring a frame: a ${frame.type} frame without a valid task id`]);
    await stillServing(x, socket);
  });

  it("ignores JSON nested too deep, a binary frame and a body piece for an unknown task", async () => {
    const x = connection();
    const socket = connected(x);
    socket.receiveText("[".repeat(200_000) + "]".repeat(200_000));
    socket.onmessage?.({ data: new ArrayBuffer(8) } as MessageEvent);
    socket.receive({ type: "request_body", id: "nobody", seq: 0, data: "!!not base64!!" });
    expect(socket.frames().map((frame) => frame.type)).toEqual(["hello"]);
    expect(x.logged).toHaveLength(2);
    await stillServing(x, socket);
  });

  it("fails a task whose body piece is not strict base64", async () => {
    const x = connection();
    const socket = connected(x);
    socket.receive({ ...GOOD, id: "t1", method: "POST", body_chunks: 1 });
    socket.receive({ type: "request_body", id: "t1", seq: 0, data: "AAA" });
    expect(socket.frames().at(-1)).toEqual({
      type: "error",
      id: "t1",
      code: "bad_task",
      message: "body piece 0 is not padded standard base64",
    });
    await settle();
    expect(x.upstream.calls).toHaveLength(0);
    await stillServing(x, socket);
  });

  it("keeps its heartbeat deadline when a welcome carries unusable values", async () => {
    const x = connection();
    const socket = connected(x);
    socket.receive({ ...WELCOME, heartbeat_interval: "abc", heartbeat_timeout: 1e308 });
    vi.advanceTimersByTime(74_000);
    expect(socket.closedWith).toBeNull();
    await stillServing(x, socket);
  });
});

describe("httpUrlOf", () => {
  it("maps ws to http and wss to https", () => {
    expect(httpUrlOf("ws://localhost:8000/ws/executor")).toBe("http://localhost:8000/ws/executor");
    expect(httpUrlOf("wss://gw.test/ws/executor")).toBe("https://gw.test/ws/executor");
  });
});
