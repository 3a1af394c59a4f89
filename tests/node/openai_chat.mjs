// Runs the official openai JS SDK against a gemproxy gateway: a whole completion, a stream, a bad key.
// Usage: GEMPROXY_URL=... GEMPROXY_KEY=... node openai_chat.mjs; prints one JSON line of what it saw.
import OpenAI from "openai";

const baseURL = `${process.env.GEMPROXY_URL}/openai/v1`;
const client = new OpenAI({ baseURL, apiKey: process.env.GEMPROXY_KEY, maxRetries: 0 });

const whole = await client.chat.completions.create({
  model: "gpt-4o",
  messages: [{ role: "user", content: "hello from node" }],
});

let streamed = "";
let usage = null;
const stream = await client.chat.completions.create({
  model: "gpt-4o",
  messages: [{ role: "user", content: "stream from node #chunks=3" }],
  stream: true,
  stream_options: { include_usage: true },
});
for await (const chunk of stream) {
  if (chunk.choices.length) streamed += chunk.choices[0].delta.content ?? "";
  if (chunk.usage) usage = chunk.usage;
}

let badKeyStatus = null;
try {
  await new OpenAI({ baseURL, apiKey: "wrong", maxRetries: 0 }).models.list();
} catch (error) {
  badKeyStatus = error.status;
}

console.log(JSON.stringify({
  content: whole.choices[0].message.content,
  model: whole.model,
  streamed,
  usage,
  badKeyStatus,
}));
