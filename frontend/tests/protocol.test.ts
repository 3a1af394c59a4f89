import { describe, expect, it } from "vitest";

import { BadFrame, MAX_MESSAGE_LENGTH, errorMessage, parseFrame } from "../src/protocol";

describe("parsing gateway frames", () => {
  it("reads a request, with lower-case header names", () => {
    expect(
      parseFrame(
        JSON.stringify({
          type: "request",
          id: "a1",
          method: "post",
          path: "/v1beta/models/m:generateContent",
          query: "",
          headers: { "Content-Type": "application/json" },
          body_chunks: 2,
          future_field: 1,
        }),
      ),
    ).toEqual({
      type: "request",
      id: "a1",
      method: "POST",
      path: "/v1beta/models/m:generateContent",
      query: "",
      headers: { "content-type": "application/json" },
      body_chunks: 2,
    });
  });

  it("keeps a request's request_id for the log, and leaves out one that does not fit", () => {
    const frame = { type: "request", id: "a1", method: "GET", path: "/v1/models", body_chunks: 0 };

    expect(parseFrame(JSON.stringify({ ...frame, request_id: "trace-77" }))).toMatchObject({ request_id: "trace-77" });
    for (const bad of ["", "a b", "x".repeat(129), 7, null, "line\nbreak", ["x"]]) {
      const parsed = parseFrame(JSON.stringify({ ...frame, request_id: bad }));
      expect(parsed).not.toHaveProperty("request_id");
      expect(parsed).toMatchObject({ type: "request", id: "a1" });
    }
  });

  it("fills in the default heartbeat when a welcome leaves it out", () => {
    expect(parseFrame('{"type":"welcome","account":"ana"}')).toMatchObject({
      account: "ana",
      heartbeat_interval: 15,
      heartbeat_timeout: 60,
    });
  });

  it("returns null for a type it does not know", () => {
    expect(parseFrame('{"type":"something_new"}')).toBeNull();
  });

  it("names the task of a malformed task frame, so it can be failed", () => {
    const attempt = () => parseFrame('{"type":"request","id":"a1","method":"GET","path":"/x","body_chunks":-1}');
    expect(attempt).toThrow(BadFrame);
    try {
      attempt();
    } catch (error) {
      expect((error as BadFrame).id).toBe("a1");
    }
  });

  it("refuses a path that could change the upstream host", () => {
    expect(() => parseFrame('{"type":"request","id":"a1","method":"GET","path":"@evil.test/x","body_chunks":0}')).toThrow(
      "path has a character that is not allowed: '@'",
    );
  });

  it.each(["not json", "[]", '{"kind":"ping"}'])("refuses %j", (text) => {
    expect(() => parseFrame(text)).toThrow(BadFrame);
  });
});

describe("error messages sent to the gateway", () => {
  it("are cut to the length the gateway accepts", () => {
    expect(errorMessage("x".repeat(5000))).toHaveLength(MAX_MESSAGE_LENGTH);
  });

  it("replace NUL and lone surrogates, and keep whole characters", () => {
    expect(errorMessage("a\u0000b\ud800c\udc00d 😀")).toBe("a\ufffdb\ufffdc\ufffdd 😀");
  });
});
