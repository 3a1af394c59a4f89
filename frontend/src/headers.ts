/**
 * Which headers cross the executor, in each direction.
 */

// Headers the browser sets itself (fetch ignores or rejects them), plus
// credentials: the gateway already strips the client's, and a browser
// executor adds none, so none may reach the upstream even by mistake.
const NOT_FORWARDED = new Set([
  "accept-charset",
  "accept-encoding",
  "authorization",
  "connection",
  "content-length",
  "cookie",
  "cookie2",
  "date",
  "dnt",
  "expect",
  "host",
  "keep-alive",
  "origin",
  "proxy-authorization",
  "referer",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "user-agent",
  "via",
  "x-goog-api-key",
]);

/**
 * The task's headers as fetch should send them. A plain object, not a Headers
 * instance: AI Studio may hand fetch's arguments to its own proxy, and plain
 * data is what survives that. Throws TypeError for a name or value fetch
 * cannot carry.
 */
export function upstreamRequestHeaders(headers: Record<string, string>): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (NOT_FORWARDED.has(lower) || lower.startsWith("sec-") || lower.startsWith("proxy-")) continue;
    result[lower] = value;
  }
  new Headers(result); // the same validation fetch would apply, but here, where it is a bad task
  return result;
}

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "trailers",
  "transfer-encoding",
  "upgrade",
]);

/**
 * The upstream's response headers as the gateway should see them: lower-case
 * names, string values, without hop-by-hop headers, and without
 * content-encoding and content-length, because fetch always hands us the
 * body already decoded, so those would describe bytes we do not send.
 */
export function relayedResponseHeaders(headers: Headers): Record<string, string> {
  const result: Record<string, string> = {};
  const listedInConnection = new Set(
    (headers.get("connection") ?? "")
      .split(",")
      .map((name) => name.trim().toLowerCase())
      .filter(Boolean),
  );
  headers.forEach((value, name) => {
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || listedInConnection.has(lower)) return;
    if (lower === "content-encoding" || lower === "content-length" || lower === "set-cookie") return;
    result[lower] = value;
  });
  return result;
}
