/**
 * The self-test: list the models upstream, exactly as a task would reach it,
 * and when that fails, count the tokens of a one-word prompt. In AI Studio
 * this proves the environment authorises this tab's calls: an applet's
 * environment may not let every method through (listing models is not what
 * apps usually call), while countTokens is a generation-family call that
 * costs no quota.
 */

import { describeError, type FetchLike } from "./executor";

/** The model the fallback counts tokens with: on the free tier, available to every account. */
export const SELF_TEST_MODEL = "gemini-2.5-flash";

export type SelfTestResult =
  | { ok: true; via: "models.list"; status: number; models: string[] }
  | { ok: true; via: "countTokens"; status: number; model: string; totalTokens: number; listFailure: string }
  | { ok: false; status: number | null; message: string };

type Failure = Extract<SelfTestResult, { ok: false }>;

interface ModelList {
  models?: { name?: unknown }[];
}

interface TokenCount {
  totalTokens?: unknown;
}

interface GoogleError {
  error?: { message?: unknown; status?: unknown };
}

function fetcher(fetchImpl: FetchLike | undefined): FetchLike {
  return fetchImpl ?? ((input: string, init: RequestInit) => globalThis.fetch(input, init));
}

/** Perform one call; its JSON body on success, or why it failed. */
async function call(url: string, init: RequestInit, fetchImpl: FetchLike): Promise<{ status: number; body: unknown } | Failure> {
  let response: Response;
  try {
    response = await fetchImpl(url, init);
  } catch (error) {
    return { ok: false, status: null, message: `${url} did not answer: ${describeError(error)}` };
  }
  let body: unknown = null;
  try {
    body = await response.json();
  } catch {
    // A non-JSON answer is reported by its status below.
  }
  if (!response.ok) {
    const error = (body as GoogleError | null)?.error;
    const detail = typeof error?.message === "string" ? error.message : response.statusText;
    return { ok: false, status: response.status, message: `HTTP ${response.status}: ${detail}` };
  }
  return { status: response.status, body };
}

export async function listModels(upstream: string, fetchImpl?: FetchLike): Promise<SelfTestResult> {
  const answer = await call(`${upstream}/v1beta/models?pageSize=1000`, { method: "GET" }, fetcher(fetchImpl));
  if ("ok" in answer) return answer;
  const models = ((answer.body as ModelList | null)?.models ?? [])
    .map((model) => (typeof model.name === "string" ? model.name.replace(/^models\//, "") : ""))
    .filter(Boolean);
  return { ok: true, via: "models.list", status: answer.status, models };
}

export async function countTokens(
  upstream: string,
  fetchImpl?: FetchLike,
  model: string = SELF_TEST_MODEL,
): Promise<{ ok: true; status: number; totalTokens: number } | Failure> {
  const answer = await call(
    `${upstream}/v1beta/models/${model}:countTokens`,
    {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ contents: [{ role: "user", parts: [{ text: "ping" }] }] }),
    },
    fetcher(fetchImpl),
  );
  if ("ok" in answer) return answer;
  const total = (answer.body as TokenCount | null)?.totalTokens;
  if (typeof total !== "number") {
    return { ok: false, status: answer.status, message: `HTTP ${answer.status}: the answer has no totalTokens` };
  }
  return { ok: true, status: answer.status, totalTokens: total };
}

/** List the models; when that fails, fall back to countTokens, and report both failures if both fail. */
export async function selfTest(upstream: string, fetchImpl?: FetchLike): Promise<SelfTestResult> {
  const listed = await listModels(upstream, fetchImpl);
  if (listed.ok) return listed;
  const counted = await countTokens(upstream, fetchImpl);
  if (counted.ok) {
    return {
      ok: true,
      via: "countTokens",
      status: counted.status,
      model: SELF_TEST_MODEL,
      totalTokens: counted.totalTokens,
      listFailure: listed.message,
    };
  }
  return {
    ok: false,
    // The later call's status decides the hint: it is the one that reached a model.
    status: counted.status ?? listed.status,
    message: `Listing models failed (${listed.message}), and countTokens on ${SELF_TEST_MODEL} failed too (${counted.message}).`,
  };
}
