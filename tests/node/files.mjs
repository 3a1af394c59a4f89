// The JS SDK's Files API against a gateway: node files.mjs, with GEMPROXY_URL and GEMPROXY_KEY set.
// Uploads UPLOAD_BYTES of a repeating pattern, then gets, lists, downloads and deletes it; prints one JSON line.
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GoogleGenAI } from "@google/genai";

const size = Number(process.env.UPLOAD_BYTES || 20 * 1024 * 1024);
const bytes = new Uint8Array(size);
for (let i = 0; i < size; i++) bytes[i] = (i * 7 + 3) % 251;

const ai = new GoogleGenAI({
  apiKey: process.env.GEMPROXY_KEY,
  httpOptions: { baseUrl: process.env.GEMPROXY_URL, apiVersion: "v1beta" },
});

const uploaded = await ai.files.upload({
  file: new Blob([bytes], { type: "application/pdf" }),
  config: { displayName: "from-node.pdf" },
});
const got = await ai.files.get({ name: uploaded.name });
const listed = [];
for await (const file of await ai.files.list({ config: { pageSize: 2 } })) listed.push(file.name);
const target = join(mkdtempSync(join(tmpdir(), "gemproxy-node-")), "download.bin");
await ai.files.download({ file: uploaded.name, downloadPath: target });
const downloaded = readFileSync(target);
await ai.files.delete({ name: uploaded.name });
let afterDelete = null;
try {
  await ai.files.get({ name: uploaded.name });
} catch (error) {
  afterDelete = error.status ?? String(error);
}

console.log(
  JSON.stringify({
    uploaded,
    got,
    listed,
    sha256: createHash("sha256").update(bytes).digest("hex"),
    downloadedSha256: createHash("sha256").update(downloaded).digest("hex"),
    afterDelete,
  }),
);
