import { describe, expect, it } from "vitest";

import { describeTask } from "../src/describe";

describe("describing a task for the log", () => {
  it.each([
    ["POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent", "gemini-2.5-flash", "streamGenerateContent"],
    ["POST", "/v1/models/gemini-2.5-pro:generateContent", "gemini-2.5-pro", "generateContent"],
    ["POST", "/v1beta/models/gemini-2.5-flash%3AcountTokens", "gemini-2.5-flash", "countTokens"],
    ["POST", "/v1beta/tunedModels/my-model:generateContent", "my-model", "generateContent"],
    ["GET", "/v1beta/models/gemini-2.5-flash", "gemini-2.5-flash", "models.get"],
    ["GET", "/v1beta/models", "", "models.list"],
    ["POST", "/upload/v1beta/files", "", "files.upload"],
    ["GET", "/v1beta/files/abc123", "", "files.get"],
    ["DELETE", "/v1beta/cachedContents/xyz", "", "cachedContents.delete"],
    ["POST", "/v1beta/cachedContents", "", "cachedContents.create"],
  ])("%s %s names model %j and call %j", (method, path, model, operation) => {
    expect(describeTask(method, path)).toEqual({ model, operation });
  });

  it("falls back to the path for anything else", () => {
    expect(describeTask("GET", "/healthz")).toEqual({ model: "", operation: "/healthz" });
  });
});
