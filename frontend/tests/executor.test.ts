import { describe, expect, it } from "vitest";

import { decodeBase64, encodeBase64, joinBytes, splitBytes } from "../src/base64";
import { Executor, type TaskFinished, type TaskStarted } from "../src/executor";
import { BODY_CHUNK_BYTES, type OutgoingFrame, type ResponseStart, type TaskFrame } from "../src/protocol";
import { ControlledBody, fakeFetch, randomBytes, settle } from "./fakes";

const UPSTREAM = "https://upstream.test";

function executor({ maxConcurrency = 4 } = {}) {
  const sent: OutgoingFrame[] = [];
  const started: TaskStarted[] = [];
  const finished: TaskFinished[] = [];
  const upstream = fakeFetch();
  let socketOpen = true;
  const subject = new Executor({
    upstream: UPSTREAM,
    maxConcurrency,
    send: (frame) => {
      if (!socketOpen) return false;
      sent.push(frame);
      return true;
    },
    observer: { taskStarted: (task) => started.push(task), taskFinished: (task) => finished.push(task) },
    fetch: upstream.fetch,
  });
  return {
    subject,
    sent,
    started,
    finished,
    upstream,
    closeSocket: () => {
      socketOpen = false;
    },
    handle: (frame: TaskFrame) => subject.handle(frame),
    framesFor: (id: string) => sent.filter((frame) => "id" in frame && frame.id === id),
  };
}

function request(id: string, overrides: Partial<Extract<TaskFrame, { type: "request" }>> = {}): TaskFrame {
  return {
    type: "request",
    id,
    method: "POST",
    path: "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
    query: "alt=sse",
    headers: { "content-type": "application/json" },
    body_chunks: 0,
    ...overrides,
  };
}

function sendBody(x: ReturnType<typeof executor>, id: string, body: Uint8Array, pieceSize = BODY_CHUNK_BYTES) {
  const pieces = splitBytes(body, pieceSize);
  x.handle(request(id, { body_chunks: pieces.length }));
  pieces.forEach((piece, seq) => x.handle({ type: "request_body", id, seq, data: encodeBase64(piece) }));
}

/** The response body the gateway would reassemble from the frames sent so far: the head's piece, then the rest. */
function relayedBody(frames: OutgoingFrame[]): Uint8Array {
  const head = frames.find((frame) => frame.type === "response_start");
  const pieces = frames.filter((frame) => frame.type === "response_body");
  pieces.forEach((frame, index) => expect(frame.seq).toBe(index));
  const data = [head?.data ?? "", ...pieces.map((frame) => frame.data)];
  return joinBytes(data.map((piece) => decodeBase64(piece)));
}

describe("a task's request", () => {
  it("is acknowledged at once, before its body has arrived", () => {
    const x = executor();
    x.handle(request("a1", { body_chunks: 2 }));
    expect(x.sent).toEqual([{ type: "ack", id: "a1" }]);
    expect(x.upstream.calls).toHaveLength(0);
  });

  it("is performed against upstream + path + query with the method and headers", async () => {
    const x = executor();
    x.handle(
      request("a1", {
        headers: { "content-type": "application/json", "x-goog-api-client": "genai-js/1.0", accept: "*/*" },
      }),
    );
    await settle();
    const call = x.upstream.last();
    expect(call.url).toBe(`${UPSTREAM}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse`);
    expect(call.init.method).toBe("POST");
    expect(call.init.headers).toEqual({
      "content-type": "application/json",
      "x-goog-api-client": "genai-js/1.0",
      accept: "*/*",
    });
  });

  it("sets only method, headers, body and signal, as the AI Studio relays do: no credentials or cache mode", async () => {
    const x = executor();
    x.handle(request("a1"));
    await settle();
    expect(Object.keys(x.upstream.last().init).sort()).toEqual(["body", "headers", "method", "signal"]);
  });

  it("has no question mark when the query is empty", async () => {
    const x = executor();
    x.handle(request("a1", { method: "GET", path: "/v1beta/models", query: "" }));
    await settle();
    expect(x.upstream.last().url).toBe(`${UPSTREAM}/v1beta/models`);
    expect(x.upstream.last().init.body).toBeNull();
  });

  it("never carries credentials, even if the gateway let one through", async () => {
    const x = executor();
    x.handle(
      request("a1", {
        headers: { authorization: "Bearer client-key", "x-goog-api-key": "client-key", cookie: "a=b", host: "gw" },
      }),
    );
    await settle();
    expect(x.upstream.last().init.headers).toEqual({});
  });

  it("fails as bad_task when a header cannot be sent", async () => {
    const x = executor();
    x.handle(request("a1", { headers: { "x-bad": "line\nbreak" } }));
    await settle();
    expect(x.upstream.calls).toHaveLength(0);
    expect(x.framesFor("a1").at(-1)).toMatchObject({ type: "error", code: "bad_task" });
  });

  it("waits for every body piece, then sends the assembled body", async () => {
    const x = executor();
    const body = new TextEncoder().encode(JSON.stringify({ contents: [{ parts: [{ text: "héllo ✓" }] }] }));
    sendBody(x, "a1", body, 7);
    await settle();
    expect(x.upstream.calls).toHaveLength(1);
    expect(await x.upstream.last().bytes()).toEqual(body);
  });

  it("hands fetch a JSON body as a string, the text the client sent", async () => {
    const x = executor();
    const text = JSON.stringify({ contents: [{ parts: [{ text: "héllo ✓ 🙂" }] }] });
    sendBody(x, "a1", new TextEncoder().encode(text));
    await settle();
    expect(x.upstream.last().init.body).toBe(text);
  });

  it("treats application/json with a charset and +json types as JSON", async () => {
    for (const contentType of ["application/json; charset=utf-8", "Application/JSON", "application/problem+json"]) {
      const x = executor();
      const body = new TextEncoder().encode('{"a":1}');
      const pieces = splitBytes(body, BODY_CHUNK_BYTES);
      x.handle(request("a1", { headers: { "content-type": contentType }, body_chunks: pieces.length }));
      pieces.forEach((piece, seq) => x.handle({ type: "request_body", id: "a1", seq, data: encodeBase64(piece) }));
      await settle();
      expect(x.upstream.last().init.body, contentType).toBe('{"a":1}');
    }
  });

  it("hands fetch a binary body as a Blob of its content type", async () => {
    const x = executor();
    const body = randomBytes(1000);
    x.handle(request("a1", { path: "/upload/v1beta/files", query: "", headers: { "content-type": "image/png" }, body_chunks: 1 }));
    x.handle({ type: "request_body", id: "a1", seq: 0, data: encodeBase64(body) });
    await settle();
    const sent = x.upstream.last().init.body;
    expect(sent).toBeInstanceOf(Blob);
    expect((sent as Blob).type).toBe("image/png");
    expect(await x.upstream.last().bytes()).toEqual(body);
  });

  it("sends an upload chunk of many pieces as one Blob of exactly its bytes, in order", async () => {
    const x = executor();
    const body = randomBytes(2 * BODY_CHUNK_BYTES + 12345);
    const pieces = splitBytes(body, BODY_CHUNK_BYTES);
    const headers = { "content-type": "application/octet-stream", "x-goog-upload-command": "upload, finalize" };
    x.handle(request("a1", { path: "/upload/v1beta/files", query: "upload_id=u1&upload_protocol=resumable", headers, body_chunks: pieces.length }));
    pieces.forEach((piece, seq) => x.handle({ type: "request_body", id: "a1", seq, data: encodeBase64(piece) }));
    await settle();
    const sent = x.upstream.last().init.body;
    expect(sent).toBeInstanceOf(Blob);
    expect((sent as Blob).size).toBe(body.length);
    expect(await x.upstream.last().bytes()).toEqual(body);
  });

  it("sends JSON that is not valid UTF-8 as a Blob, so no byte changes", async () => {
    const x = executor();
    const body = new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]);
    sendBody(x, "a1", body);
    await settle();
    expect(x.upstream.last().init.body).toBeInstanceOf(Blob);
    expect(await x.upstream.last().bytes()).toEqual(body);
  });

  it("keeps a byte order mark at the start of a JSON body", async () => {
    const x = executor();
    const body = new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode("{}")]);
    sendBody(x, "a1", body);
    await settle();
    expect(await x.upstream.last().bytes()).toEqual(body);
  });

  it("gives a Blob no content type when the task has none", async () => {
    const x = executor();
    x.handle(request("a1", { headers: {}, body_chunks: 1 }));
    x.handle({ type: "request_body", id: "a1", seq: 0, data: encodeBase64(new Uint8Array([1, 2, 3])) });
    await settle();
    expect((x.upstream.last().init.body as Blob).type).toBe("");
    expect(x.upstream.last().init.headers).toEqual({});
  });

  it("keeps a binary body intact: 5 MiB of random bytes in 256 KiB pieces", async () => {
    const x = executor();
    const body = randomBytes(5 * 1024 * 1024);
    sendBody(x, "a1", body);
    await settle();
    expect(x.upstream.calls).toHaveLength(1);
    expect(Buffer.from((await x.upstream.last().bytes())!).equals(Buffer.from(body))).toBe(true);
  });

  it("does not start before the last piece", async () => {
    const x = executor();
    x.handle(request("a1", { body_chunks: 2 }));
    x.handle({ type: "request_body", id: "a1", seq: 0, data: encodeBase64(new Uint8Array([1])) });
    await settle();
    expect(x.upstream.calls).toHaveLength(0);
  });

  it("fails as bad_task when a piece arrives out of order", async () => {
    const x = executor();
    x.handle(request("a1", { body_chunks: 2 }));
    x.handle({ type: "request_body", id: "a1", seq: 1, data: "AA==" });
    await settle();
    expect(x.framesFor("a1")).toEqual([
      { type: "ack", id: "a1" },
      { type: "error", id: "a1", code: "bad_task", message: "body piece 1 arrived, expected 0" },
    ]);
    expect(x.upstream.calls).toHaveLength(0);
  });

  it("fails as bad_task when a piece is not base64", () => {
    const x = executor();
    x.handle(request("a1", { body_chunks: 1 }));
    x.handle({ type: "request_body", id: "a1", seq: 0, data: "not base64!" });
    expect(x.sent[1]).toMatchObject({ type: "error", id: "a1", code: "bad_task" });
  });

  it("ignores a repeated request frame for a live attempt", () => {
    const x = executor();
    x.handle(request("a1"));
    x.handle(request("a1"));
    expect(x.sent.filter((frame) => frame.type === "ack")).toHaveLength(1);
    expect(x.subject.inFlight).toBe(1);
  });
});

describe("a task's response", () => {
  it("starts with the upstream's status and headers, lower-case, minus encoding, length and hop-by-hop", async () => {
    const x = executor();
    x.handle(request("a1"));
    await settle();
    x.upstream.last().respond(
      200,
      {
        "Content-Type": "text/event-stream",
        "Content-Encoding": "gzip",
        "Content-Length": "123",
        Connection: "keep-alive, x-hop",
        "X-Hop": "1",
        "Transfer-Encoding": "chunked",
        "X-Goog-Upload-Status": "final",
      },
      "",
    );
    await settle();
    expect(x.framesFor("a1")[1]).toEqual({
      type: "response_start",
      id: "a1",
      status: 200,
      headers: { "content-type": "text/event-stream", "x-goog-upload-status": "final" },
    });
  });

  it("passes each piece on as it arrives, in order, and ends with the count", async () => {
    const x = executor();
    x.handle(request("a1"));
    await settle();
    const body = x.upstream.last().respond(200, { "content-type": "text/event-stream" }, new ControlledBody())!;
    await settle();
    expect(x.framesFor("a1").map((frame) => frame.type)).toEqual(["ack"]); // the head waits for a piece

    body.push('data: {"n":1}\r\n\r\n');
    await settle();
    // The head waits for the first piece and carries it: one frame fewer before the client's first byte.
    expect(x.framesFor("a1").map((frame) => frame.type)).toEqual(["ack", "response_start"]);
    expect(decodeBase64((x.framesFor("a1")[1] as ResponseStart).data!)).toEqual(
      new TextEncoder().encode('data: {"n":1}\r\n\r\n'),
    );

    // Pieces may be cut anywhere, even inside an event; they are relayed as they come.
    body.push('data: {"n"');
    await settle();
    body.push(":2}\r\n\r\n");
    await settle();
    expect(x.framesFor("a1").filter((frame) => frame.type === "response_body")).toHaveLength(2);

    body.end();
    await settle();
    const frames = x.framesFor("a1");
    expect(frames.at(-1)).toEqual({ type: "response_end", id: "a1", chunks: 2 });
    const expected = 'data: {"n":1}\r\n\r\ndata: {"n":2}\r\n\r\n';
    expect(new TextDecoder().decode(relayedBody(frames))).toBe(expected);
    expect(x.finished[0]).toMatchObject({ id: "a1", outcome: "served", status: 200, bytes: expected.length });
    expect(x.subject.inFlight).toBe(0);
  });

  it("cuts a large piece into frames of at most 256 KiB and keeps binary bytes intact", async () => {
    const x = executor();
    x.handle(request("a1", { method: "GET", path: "/v1beta/files/abc:download", query: "alt=media" }));
    await settle();
    const body = x.upstream.last().respond(200, { "content-type": "application/octet-stream" }, new ControlledBody())!;
    const bytes = randomBytes(600 * 1024 + 5);
    body.push(bytes);
    body.end();
    await settle();

    const frames = x.framesFor("a1");
    const pieces = frames.filter((frame) => frame.type === "response_start" || frame.type === "response_body");
    expect(pieces).toHaveLength(3);
    for (const piece of pieces) expect(decodeBase64(piece.data!).length).toBeLessThanOrEqual(BODY_CHUNK_BYTES);
    expect(Buffer.from(relayedBody(frames)).equals(Buffer.from(bytes))).toBe(true);
    expect(frames.at(-1)).toEqual({ type: "response_end", id: "a1", chunks: 2 });
  });

  it("relays an upstream error status as an ordinary response", async () => {
    const x = executor();
    x.handle(request("a1"));
    await settle();
    const error = '{"error":{"code":429,"status":"RESOURCE_EXHAUSTED"}}';
    x.upstream.last().respond(429, { "content-type": "application/json" }, error);
    await settle();
    const frames = x.framesFor("a1");
    expect(frames.map((frame) => frame.type)).toEqual(["ack", "response_start", "response_end"]);
    expect(new TextDecoder().decode(relayedBody(frames))).toBe(error);
    expect(x.finished[0]).toMatchObject({ outcome: "served", status: 429 });
  });

  it("answers a body-less response with zero pieces", async () => {
    const x = executor();
    x.handle(request("a1", { method: "DELETE", path: "/v1beta/files/abc" }));
    await settle();
    x.upstream.last().respond(204);
    await settle();
    expect(x.framesFor("a1").at(-1)).toEqual({ type: "response_end", id: "a1", chunks: 0 });
  });

  it("reports upstream_unreachable when fetch fails", async () => {
    const x = executor();
    x.handle(request("a1"));
    await settle();
    x.upstream.last().refuse("Failed to fetch");
    await settle();
    expect(x.framesFor("a1")).toEqual([
      { type: "ack", id: "a1" },
      { type: "error", id: "a1", code: "upstream_unreachable", message: "Failed to fetch" },
    ]);
    expect(x.finished[0]).toMatchObject({ outcome: "failed" });
  });

  it("reports upstream_unreachable when reading the body fails midway, and sends no end", async () => {
    const x = executor();
    x.handle(request("a1"));
    await settle();
    const body = x.upstream.last().respond(200, {}, new ControlledBody())!;
    body.push("data: 1\r\n\r\n");
    await settle();
    body.fail(new TypeError("network error"));
    await settle();
    const frames = x.framesFor("a1");
    expect(frames.map((frame) => frame.type)).toEqual(["ack", "response_start", "error"]);
    expect(frames.at(-1)).toMatchObject({ code: "upstream_unreachable" });
  });
});

describe("cancel", () => {
  it("aborts the fetch's signal and sends nothing more for the task", async () => {
    const x = executor();
    x.handle(request("a1"));
    await settle();
    const call = x.upstream.last();
    x.handle({ type: "cancel", id: "a1" });
    expect(call.init.signal!.aborted).toBe(true);
    call.respond(200, {}, "too late");
    await settle();
    expect(x.framesFor("a1")).toEqual([{ type: "ack", id: "a1" }]);
    expect(x.finished[0]).toMatchObject({ id: "a1", outcome: "cancelled" });
    expect(x.subject.inFlight).toBe(0);
  });

  it("stops a stream that is under way", async () => {
    const x = executor();
    x.handle(request("a1"));
    await settle();
    const call = x.upstream.last();
    const body = call.respond(200, { "content-type": "text/event-stream" }, new ControlledBody())!;
    body.push("data: 1\r\n\r\n");
    await settle();
    const before = x.framesFor("a1").length;

    x.handle({ type: "cancel", id: "a1" });
    expect(call.init.signal!.aborted).toBe(true);
    await settle();
    expect(x.framesFor("a1")).toHaveLength(before);
  });

  it("of a task still receiving its body means it is never performed", async () => {
    const x = executor();
    x.handle(request("a1", { body_chunks: 2 }));
    x.handle({ type: "cancel", id: "a1" });
    x.handle({ type: "request_body", id: "a1", seq: 0, data: "AA==" });
    x.handle({ type: "request_body", id: "a1", seq: 1, data: "AA==" });
    await settle();
    expect(x.upstream.calls).toHaveLength(0);
    expect(x.sent).toEqual([{ type: "ack", id: "a1" }]);
  });
});

describe("frames about unknown ids", () => {
  it("are dropped silently", async () => {
    const x = executor();
    x.handle({ type: "request_body", id: "nope", seq: 0, data: "AA==" });
    x.handle({ type: "cancel", id: "nope" });
    await settle();
    expect(x.sent).toEqual([]);
    expect(x.upstream.calls).toHaveLength(0);
  });

  it("include those of a finished task", async () => {
    const x = executor();
    x.handle(request("a1"));
    await settle();
    x.upstream.last().respond(200, {}, "ok");
    await settle();
    const count = x.sent.length;
    x.handle({ type: "cancel", id: "a1" });
    x.handle({ type: "request_body", id: "a1", seq: 0, data: "AA==" });
    expect(x.sent).toHaveLength(count);
    expect(x.finished).toHaveLength(1);
  });
});

describe("concurrency", () => {
  it("never runs more tasks than max_concurrency", async () => {
    const x = executor({ maxConcurrency: 2 });
    x.handle(request("a1"));
    x.handle(request("a2"));
    x.handle(request("a3"));
    await settle();
    expect(x.upstream.calls).toHaveLength(2);
    expect(x.framesFor("a3")).toEqual([
      { type: "ack", id: "a3" },
      { type: "error", id: "a3", code: "internal", message: "executor at capacity (2 tasks)" },
    ]);
    expect(x.subject.inFlight).toBe(2);
  });

  it("frees a slot when a task ends or is cancelled", async () => {
    const x = executor({ maxConcurrency: 2 });
    x.handle(request("a1"));
    x.handle(request("a2"));
    await settle();
    x.upstream.calls[0]!.respond(200, {}, "done");
    x.handle({ type: "cancel", id: "a2" });
    await settle();
    x.handle(request("a3"));
    x.handle(request("a4"));
    await settle();
    expect(x.upstream.calls).toHaveLength(4);
    expect(x.sent.filter((frame) => frame.type === "error")).toEqual([]);
  });
});

describe("the end of the socket", () => {
  it("abandons every task in flight and aborts its fetch", async () => {
    const x = executor();
    x.handle(request("a1"));
    x.handle(request("a2", { body_chunks: 1 }));
    await settle();
    const call = x.upstream.last();
    x.closeSocket();
    x.subject.abandonAll("connection lost");
    expect(call.init.signal!.aborted).toBe(true);
    expect(x.finished.map((task) => [task.id, task.outcome])).toEqual([
      ["a1", "failed"],
      ["a2", "failed"],
    ]);
    expect(x.subject.inFlight).toBe(0);
  });

  it("stops a task whose frames can no longer be sent", async () => {
    const x = executor();
    x.handle(request("a1"));
    await settle();
    const call = x.upstream.last();
    const body = call.respond(200, {}, new ControlledBody())!;
    await settle();
    x.closeSocket();
    body.push("more");
    await settle();
    expect(call.init.signal!.aborted).toBe(true);
    expect(x.finished[0]).toMatchObject({ outcome: "failed", detail: "connection lost" });
  });
});

describe("the observer", () => {
  it("hears of each task with its model and call", async () => {
    const x = executor();
    x.handle(request("a1"));
    expect(x.started[0]).toMatchObject({
      id: "a1",
      method: "POST",
      model: "gemini-2.5-flash",
      operation: "streamGenerateContent",
      requestId: "",
    });
  });

  it("hears of the gateway's request id, to find the call in the gateway's log", async () => {
    const x = executor();
    x.handle(request("a1", { request_id: "trace-77" }));
    expect(x.started[0]).toMatchObject({ id: "a1", requestId: "trace-77" });
  });
});
