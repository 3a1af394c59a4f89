import { describe, expect, it } from "vitest";

import { decodeBase64 } from "../src/base64";
import { BadFrame, MAX_BODY_CHUNKS, parseFrame } from "../src/protocol";
import { headerProblem, isTaskId, pathProblem, queryProblem } from "../src/taskChecks";

// The same spellings as tests/test_agent_refuses_tasks_that_change_meaning.py: both executors refuse them.
const REFUSED_PATHS: Record<string, string> = {
  "question mark (decoded %3F)": "/v1beta/models/gemini-2.5-flash?alt=x:generateContent",
  "hash (decoded %23)": "/v1beta/models/gemini#x:generateContent",
  "percent escape": "/v1beta/models/gemini%3F:generateContent",
  "NUL (decoded %00)": "/v1beta/models/gemini\u0000:generateContent",
  "CR LF (decoded %0d%0a)": "/v1beta/models/gemini\r\nX-Forged: 1:generateContent",
  "non-ASCII (decoded %C3%BC)": "/v1beta/models/gemini-\u00fc:generateContent",
  space: "/v1beta/models/gemini flash:generateContent",
  tab: "/v1beta/models/gemini\t:generateContent",
  backslash: "/v1beta/models\\..\\files",
  "dot-dot segment": "/v1beta/models/../files/abc",
  "dot segment": "/v1beta/./models/gemini:generateContent",
  "empty segment": "/v1beta//models",
  "trailing slash": "/v1beta/models/",
  "relative path": "v1beta/models",
  "another host": "@evil.example/v1beta/models",
  "network path": "//evil.example/v1beta/models",
  "no API version": "/admin/login",
  "version alone": "/v1beta",
  "unknown version": "/v2/models",
  "absolute URL": "http://evil.example/v1beta/models",
  empty: "",
};

const ACCEPTED_PATHS = [
  "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
  "/v1/models",
  "/v1alpha/models/gemini-2.0-flash-exp:generateContent",
  "/v1beta/files/abc123",
  "/v1beta/cachedContents/c-1_x~y",
  "/v1beta/batches/123:cancel",
  "/upload/v1beta/files",
  "/download/v1beta/files/abc:download",
  "/v1beta/openai/chat/completions",
];

const REFUSED_QUERIES: Record<string, string> = {
  key: "key=client-key",
  "key after others": "alt=sse&key=client-key",
  "KEY upper case": "KEY=client-key",
  "key percent-encoded": "%6Bey=client-key",
  "key partly encoded": "k%65y=client-key",
  "key fully encoded, lower-case hex": "%6b%65%79=client-key",
  hash: "alt=sse#frag",
  space: "alt=s se",
  "CR LF": "alt=sse\r\nX-Forged: 1",
  NUL: "alt=sse\u0000",
  "non-ASCII": "q=\u00fc",
  "bare percent": "q=100%",
  "truncated escape": "q=%4",
  "non-hex escape": "q=%zz",
  "part without '='": "alt",
  "empty name": "=sse",
  "empty part": "alt=sse&&pageSize=1",
  "trailing '&'": "alt=sse&",
  "leading '?'": "?alt=sse",
  backslash: "q=a\\b",
};

const ACCEPTED_QUERIES = [
  "",
  "alt=sse",
  "pageSize=10&pageToken=Cg%3D%3D",
  "pageToken=Cg==",
  "q=a+b&r=%2F%3F%23&s=",
  "fields=a,b(c)&upload_id=x-y_z.~:@/?",
  "keys=1&monkey=2&key_=3",
];

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
