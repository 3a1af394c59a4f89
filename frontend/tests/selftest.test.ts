import { describe, expect, it } from "vitest";

import { SELF_TEST_MODEL, selfTest } from "../src/selftest";
import { fakeFetch, settle } from "./fakes";

const UPSTREAM = "https://upstream.test";

const GOOGLE_403 = JSON.stringify({
  error: { code: 403, message: "The caller does not have permission", status: "PERMISSION_DENIED" },
});

async function answered(upstream: ReturnType<typeof fakeFetch>, count: number): Promise<void> {
  for (let i = 0; i < 20 && upstream.calls.length < count; i++) await settle();
  expect(upstream.calls).toHaveLength(count);
}

describe("the self-test", () => {
  it("lists the models and stops there when that works", async () => {
    const upstream = fakeFetch();
    const result = selfTest(UPSTREAM, upstream.fetch);
    await answered(upstream, 1);
    expect(upstream.last().url).toBe(`${UPSTREAM}/v1beta/models?pageSize=1000`);
    upstream.last().respond(200, { "content-type": "application/json" }, JSON.stringify({ models: [{ name: "models/gemini-2.5-flash" }] }));
    expect(await result).toEqual({ ok: true, via: "models.list", status: 200, models: ["gemini-2.5-flash"] });
    expect(upstream.calls).toHaveLength(1);
  });

  it("falls back to countTokens when listing the models is refused", async () => {
    const upstream = fakeFetch();
    const result = selfTest(UPSTREAM, upstream.fetch);
    await answered(upstream, 1);
    upstream.last().respond(403, { "content-type": "application/json" }, GOOGLE_403);
    await answered(upstream, 2);
    const count = upstream.last();
    expect(count.url).toBe(`${UPSTREAM}/v1beta/models/${SELF_TEST_MODEL}:countTokens`);
    expect(count.init.method).toBe("POST");
    expect(count.init.headers).toEqual({ "content-type": "application/json" });
    expect(typeof count.init.body).toBe("string");
    expect(JSON.parse(count.init.body as string)).toEqual({ contents: [{ role: "user", parts: [{ text: "ping" }] }] });
    count.respond(200, { "content-type": "application/json" }, JSON.stringify({ totalTokens: 1 }));
    expect(await result).toEqual({
      ok: true,
      via: "countTokens",
      status: 200,
      model: SELF_TEST_MODEL,
      totalTokens: 1,
      listFailure: "HTTP 403: The caller does not have permission",
    });
  });

  it("falls back to countTokens when listing the models does not answer at all", async () => {
    const upstream = fakeFetch();
    const result = selfTest(UPSTREAM, upstream.fetch);
    await answered(upstream, 1);
    upstream.last().refuse("Failed to fetch");
    await answered(upstream, 2);
    upstream.last().respond(200, { "content-type": "application/json" }, JSON.stringify({ totalTokens: 2 }));
    expect(await result).toMatchObject({ ok: true, via: "countTokens", totalTokens: 2 });
  });

  it("reports both failures, with the status of countTokens, when both fail", async () => {
    const upstream = fakeFetch();
    const result = selfTest(UPSTREAM, upstream.fetch);
    await answered(upstream, 1);
    upstream.last().respond(404, {}, "not found");
    await answered(upstream, 2);
    upstream.last().respond(403, { "content-type": "application/json" }, GOOGLE_403);
    const outcome = await result;
    expect(outcome.ok).toBe(false);
    expect(outcome.status).toBe(403);
    if (!outcome.ok) {
      expect(outcome.message).toContain("Listing models failed (HTTP 404");
      expect(outcome.message).toContain("countTokens on gemini-2.5-flash failed too (HTTP 403: The caller does not have permission)");
    }
  });

  it("does not count a 200 without totalTokens as a success", async () => {
    const upstream = fakeFetch();
    const result = selfTest(UPSTREAM, upstream.fetch);
    await answered(upstream, 1);
    upstream.last().respond(500, {}, "");
    await answered(upstream, 2);
    upstream.last().respond(200, { "content-type": "text/html" }, "<html>sign in</html>");
    expect(await result).toMatchObject({ ok: false, status: 200 });
  });

  it("sets no credentials or cache mode on either call, like the tasks", async () => {
    const upstream = fakeFetch();
    const result = selfTest(UPSTREAM, upstream.fetch);
    await answered(upstream, 1);
    upstream.last().respond(403, {}, GOOGLE_403);
    await answered(upstream, 2);
    upstream.last().respond(200, {}, JSON.stringify({ totalTokens: 1 }));
    await result;
    for (const call of upstream.calls) {
      expect(call.init).not.toHaveProperty("credentials");
      expect(call.init).not.toHaveProperty("cache");
    }
  });
});
