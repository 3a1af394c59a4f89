/**
 * The self-test: list the models upstream, exactly as a task would reach it.
 * In AI Studio this proves the environment authorises this tab's calls.
 */

import { describeError, type FetchLike } from "./executor";

export type SelfTestResult =
  | { ok: true; status: number; models: string[] }
  | { ok: false; status: number | null; message: string };

interface ModelList {
  models?: { name?: unknown }[];
}

interface GoogleError {
  error?: { message?: unknown; status?: unknown };
}

export async function listModels(upstream: string, fetchImpl?: FetchLike): Promise<SelfTestResult> {
  const url = `${upstream}/v1beta/models?pageSize=1000`;
  const doFetch = fetchImpl ?? ((input: string, init: RequestInit) => globalThis.fetch(input, init));
  let response: Response;
  try {
    response = await doFetch(url, { method: "GET", credentials: "omit", cache: "no-store" });
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
  const models = ((body as ModelList | null)?.models ?? [])
    .map((model) => (typeof model.name === "string" ? model.name.replace(/^models\//, "") : ""))
    .filter(Boolean);
  return { ok: true, status: response.status, models };
}
