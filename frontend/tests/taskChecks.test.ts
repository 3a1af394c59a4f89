import { readFileSync } from "node:fs";

import { describe, expect, it } from "vitest";

import { decodeBase64 } from "../src/base64";
import { BadFrame, MAX_BODY_CHUNKS, parseFrame } from "../src/protocol";
import { headerProblem, isTaskId, pathProblem, queryProblem } from "../src/taskChecks";

// The same cases drive the headless agent's tests (tests/test_agent_refuses_tasks_that_change_meaning.py).
const CASES = JSON.parse(readFileSync(new URL("../../tests/task_check_cases.json", import.meta.url), "utf8")) as {
  refused_paths: Record<string, string>;
  accepted_paths: string[];
  refused_queries: Record<string, string>;
  accepted_queries: string[];
};
const REFUSED_PATHS = CASES.refused_paths;
const ACCEPTED_PATHS = CASES.accepted_paths;
const REFUSED_QUERIES = CASES.refused_queries;
const ACCEPTED_QUERIES = CASES.accepted_queries;

function requestFrame(fields: Record<string, unknown>): string {
  return JSON.stringify({
    type: "request",
    id: "a1",
    method: "POST",
    path: "/v1beta/models/gemini-2.5-flash:generateContent",
    query: "",
    headers: { "content-type": "application/json" },
    body_chunks: 0,
    ...fields,
  });
}

/** The BadFrame parseFrame throws for text, or a failure when it throws none. */
function badFrame(text: string): BadFrame {
  try {
    parseFrame(text);
  } catch (error) {
    expect(error).toBeInstanceOf(BadFrame);
    return error as BadFrame;
  }
  throw new Error(`parseFrame accepted ${text}`);
}

describe("the path of a task", () => {
  it.each(Object.entries(REFUSED_PATHS))("is refused when it has a %s", (_, path) => {
    expect(pathProblem(path)).not.toBeNull();
  });

  it.each(ACCEPTED_PATHS)("is accepted in the Gemini API's shape: %s", (path) => {
    expect(pathProblem(path)).toBeNull();
  });

  it("is refused with a message that shows the character, never a raw control character", () => {
    expect(pathProblem("/v1beta/models/a\u0000b")).toBe("path has a character that is not allowed: U+0000");
    expect(pathProblem("/v1beta/models/a\r\nb")).toBe("path has a character that is not allowed: U+000D");
    expect(pathProblem("/v1beta/models/a?b")).toBe("path has a character that is not allowed: '?'");
  });

  it.each(Object.entries(REFUSED_PATHS))("makes a request frame with a %s a bad task for its id", (_, path) => {
    const error = badFrame(requestFrame({ path }));
    expect(error.id).toBe("a1");
    expect(error.message).toMatch(/^path /);
  });
});

describe("the query of a task", () => {
  it.each(Object.entries(REFUSED_QUERIES))("is refused when it has a %s", (_, query) => {
    expect(queryProblem(query)).not.toBeNull();
  });

  it.each(ACCEPTED_QUERIES)("is accepted when well formed: %j", (query) => {
    expect(queryProblem(query)).toBeNull();
  });

  it("names a smuggled key without echoing it", () => {
    expect(queryProblem("alt=sse&k%65y=client-key")).toBe("query carries 'key': the executor adds its own credentials");
  });

  it.each(Object.entries(REFUSED_QUERIES))("makes a request frame with a %s a bad task for its id", (_, query) => {
    const error = badFrame(requestFrame({ query }));
    expect(error.id).toBe("a1");
    expect(error.message).toMatch(/^query /);
    expect(error.message).not.toContain("client-key");
  });
});

describe("the other fields of a request frame", () => {
  const malformed: Record<string, Record<string, unknown>> = {
    "no method": { method: undefined },
    "a method that is not a string": { method: 7 },
    "an unknown method": { method: "BREW" },
    "a non-ASCII method": { method: "G\u00c9T" },
    "a path that is not a string": { path: ["/v1beta/models"] },
    "a query that is not a string": { query: { alt: "sse" } },
    "headers that are not an object": { headers: "content-type: application/json" },
    "a header value that is not a string": { headers: { "content-type": 1 } },
    "a header value with CR LF": { headers: { "x-goog-api-client": "a\r\nx-forged: 1" } },
    "a header value with NUL": { headers: { "x-goog-api-client": "a\u0000b" } },
    "a header name that is not a token": { headers: { "bad name": "x" } },
    "no body_chunks": { body_chunks: undefined },
    "body_chunks as a string": { body_chunks: "1" },
    "body_chunks as a boolean": { body_chunks: true },
    "fractional body_chunks": { body_chunks: 1.5 },
    "negative body_chunks": { body_chunks: -1 },
    "huge body_chunks": { body_chunks: 1e12 },
    "body_chunks over the limit": { body_chunks: MAX_BODY_CHUNKS + 1 },
  };

  it.each(Object.entries(malformed))("make a frame with %s a bad task for its id", (_, fields) => {
    expect(badFrame(requestFrame(fields)).id).toBe("a1");
  });

  it("upper-cases an allowed method", () => {
    expect(parseFrame(requestFrame({ method: "patch" }))).toMatchObject({ method: "PATCH" });
  });

  it("accepts the largest announced body", () => {
    expect(parseFrame(requestFrame({ body_chunks: MAX_BODY_CHUNKS }))).toMatchObject({ body_chunks: MAX_BODY_CHUNKS });
  });

  it("checks header names and values", () => {
    expect(headerProblem("x-goog-api-client", "genai-js/1.0 gl-node/20")).toBeNull();
    expect(headerProblem("x", "tab\tok")).toBeNull();
    expect(headerProblem("x", "line\nbreak")).toBe("header 'x' must be a string without control characters");
    expect(headerProblem("x:y", "v")).toBe("headers has a name that is not an HTTP token");
  });
});

describe("a task frame without a usable id", () => {
  const unusable: Record<string, unknown> = {
    missing: undefined,
    "a number": 17,
    "a list": ["x"],
    "an object": { a: 1 },
    empty: "",
    "10,000 characters": "x".repeat(10_000),
    "with CR LF": "a\r\nb",
  };

  const cases = ["request", "request_body", "cancel"].flatMap((type) =>
    Object.entries(unusable).map(([name, id]) => [type, name, id]),
  );

  it.each(cases)("is a %s frame refused without naming a task when its id is %s", (type, _, id) => {
    expect(badFrame(JSON.stringify({ type, id, seq: 0, data: "" })).id).toBeNull();
  });

  it("is recognised by isTaskId", () => {
    expect(isTaskId("5b0c0f0e00004000800000000000001a")).toBe(true);
    expect(isTaskId("x".repeat(129))).toBe(false);
    expect(isTaskId("a b")).toBe(false);
  });
});

describe("body pieces", () => {
  it.each([
    ["not base64", "!!!!"],
    ["missing padding", "AAA"],
    ["an embedded space", "AA AA==="],
    ["a trailing newline", "AAAA\n"],
    ["padding in the middle", "AA==AAAA"],
    ["three padding characters", "A==="],
    ["the url-safe alphabet", "-_-_"],
  ])("are refused when they have %s", (_, data) => {
    expect(() => decodeBase64(data)).toThrow();
  });

  it("are refused with a seq that is not a non-negative integer", () => {
    for (const seq of ["0", true, -1, 0.5, null]) {
      expect(badFrame(JSON.stringify({ type: "request_body", id: "a1", seq, data: "AAAA" })).id).toBe("a1");
    }
  });
});

describe("a welcome", () => {
  it.each([["abc"], [null], [[]], [-1], [0], [true], [1e308]])("falls back to the default heartbeat for %j", (value) => {
    const welcome = { type: "welcome", heartbeat_interval: value, heartbeat_timeout: value };
    expect(parseFrame(JSON.stringify(welcome))).toMatchObject({ heartbeat_interval: 15, heartbeat_timeout: 60 });
  });
});
