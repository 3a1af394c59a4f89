// The JS SDK's caches against a gateway: node caches.mjs, with GEMPROXY_URL and GEMPROXY_KEY set.
// Creates, gets, lists, updates, uses and deletes a cached content; prints one JSON line.
import { GoogleGenAI } from "@google/genai";

const ai = new GoogleGenAI({ apiKey: process.env.GEMPROXY_KEY, httpOptions: { baseUrl: process.env.GEMPROXY_URL } });
const model = "gemini-2.5-flash";

const created = await ai.caches.create({
  model,
  config: { contents: ["A cached paragraph. ".repeat(220)], displayName: "from-node", ttl: "600s" },
});
const got = await ai.caches.get({ name: created.name });
const listed = [];
for await (const cache of await ai.caches.list({ config: { pageSize: 2 } })) listed.push(cache.name);
const updated = await ai.caches.update({ name: created.name, config: { ttl: "7200s" } });
const answer = await ai.models.generateContent({
  model,
  contents: "what does it say?",
  config: { cachedContent: created.name },
});
await ai.caches.delete({ name: created.name });
let afterDelete = null;
try {
  await ai.caches.get({ name: created.name });
} catch (error) {
  afterDelete = error.status ?? String(error);
}

console.log(JSON.stringify({ created, got, listed, updated, usage: answer.usageMetadata, afterDelete }));
