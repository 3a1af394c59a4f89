/**
 * A short human description of a task for the live log: which model, which call.
 */

export interface TaskDescription {
  /** The model's id ("gemini-2.5-flash"), or "" when the call names none. */
  model: string;
  /** The API method ("streamGenerateContent", "models.list", "files.upload", ...). */
  operation: string;
}

const MODEL_CALL = /\/(?:models|tunedModels)\/([^/:]+)(?::|%3A)([A-Za-z]+)$/i;
const MODEL_GET = /\/(models|tunedModels)\/([^/:]+)$/i;
const COLLECTION = /^\/(?:upload\/)?v1[a-z0-9]*\/([A-Za-z]+)(?:\/([^/:]+))?/;

export function describeTask(method: string, path: string): TaskDescription {
  let decoded = path;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    // A malformed escape: describe the raw path.
  }
  const call = MODEL_CALL.exec(decoded);
  if (call) return { model: call[1] ?? "", operation: call[2] ?? "" };
  const get = MODEL_GET.exec(decoded);
  if (get) return { model: get[2] ?? "", operation: `${get[1]}.get` };
  const collection = COLLECTION.exec(decoded);
  if (collection) {
    const name = collection[1] ?? "";
    if (decoded.startsWith("/upload/")) return { model: "", operation: `${name}.upload` };
    const verb = collection[2]
      ? { GET: "get", DELETE: "delete", PATCH: "patch" }[method] ?? method.toLowerCase()
      : { GET: "list", POST: "create" }[method] ?? method.toLowerCase();
    return { model: "", operation: `${name}.${verb}` };
  }
  return { model: "", operation: decoded };
}
