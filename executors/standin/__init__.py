"""gemproxy's local stand-in for Google's Gemini API (generativelanguage.googleapis.com).

A headless executor pointed at it (``--upstream``) serves calls without a
Google key: ``scripts/demo`` runs it so that a newcomer can see gemproxy work,
and the test suite and the benchmarks use it in place of Google. It is not
Google and never claims to be: its models' descriptions, its ``Server`` header
and, when started standalone, every answer's ``modelVersion`` say so.

It answers in Google's formats, as the installed google-genai SDK parses them:
pretty-printed JSON for unary calls, `data: <compact JSON>\\r\\n\\r\\n` events for
`alt=sse` streams, a JSON array written element by element for streams without
`alt`, and `{"error": {"code", "message", "status", "details"}}` for every error.

In-process (the tests)::

    async with GeminiStandIn() as standin:      # or: await standin.start() / await standin.stop()
        client = genai.Client(api_key="x", http_options={"base_url": standin.url})
        ...
        standin.requests[-1].headers["x-goog-api-key"]

`standin.requests` records every request (method, path, query, lower-case headers,
raw body, parsed JSON) together with what it answered (status, body as written,
before any gzip). `standin.stream_held` is set when a `#hold` stream waits,
`standin.release()` lets every waiting stream go on. `standin.stream_aborted` is set
(and `standin.aborted_streams` counted) when a caller closes the connection before
the answer is complete. `standin.in_flight` / `standin.peak_in_flight` count requests
being answered. `GeminiStandIn(valid_keys={"k"})` makes it check API keys as Google
does (403 without a key, 400 API_KEY_INVALID for a wrong one); by default any
caller is accepted, as AI Studio's environment does for the browser executor.
`GeminiStandIn(batch_delays=(pending, running))` sets how long a new batch stays PENDING and RUNNING
(`standin.batches`: the Batch API, `executors/standin/batches.py`).
`GeminiStandIn(disclose=True)` marks every answer's `modelVersion` as the stand-in's.
`GeminiStandIn(quotas={"key-a": 2}, quota_window=60)` gives the upstream key
`key-a` Google's free-tier quota of 2 generate calls per model per window,
refused beyond it with Google's exact 429 (`executors/standin/quota.py`).

Files (`executors/standin/files.py`): Google's resumable upload (`POST
/upload/{v}/files` start, then chunks to the absolute `X-Goog-Upload-URL`,
`upload` / `upload, finalize` at `X-Goog-Upload-Offset`; or `uploadType=multipart`),
`files/{id}` get, list and delete. A file is PROCESSING for
`GeminiStandIn(file_processing_seconds=0.2)`, then ACTIVE, and belongs to the key
that uploaded it: any other key gets 403 PERMISSION_DENIED for it, on get and in
a generateContent, streamGenerateContent or countTokens body; a body naming a
file still PROCESSING gets 400 FAILED_PRECONDITION. Other stand-in parts check a
body with `standin.files.check_references(body, api_key)`; a test makes the
upstream lose a copy with `standin.files.lose(file_id)`.

`standin.caches` holds every account's cachedContents (create/get/list/patch/delete per
API key, Google's minimum size, expiry, 403 for another key's cache); generateContent
naming one counts its tokens as `cachedContentTokenCount` (`executors/standin/caches.py`,
which documents the deterministic token count).

Standalone (the demo, the benchmarks): `python -m executors.standin --port 8601`
prints its URL as its only line of output, and discloses itself in every answer;
`POST /_fake/release` releases held streams, `GET /_fake/stats` gives counters.

Directives, written anywhere in the last user text of a request:

    #hold              stream: send the first chunk, then wait for release()
    #chunks=N          stream: N chunks (default 3)
    #error=CODE        answer with Google's error for CODE (400, 403, 404, 429, 500, 503, 504);
                       429 is the free tier's RESOURCE_EXHAUSTED, word for word: Help, QuotaFailure
                       and RetryInfo details, the message ending "Please retry in 7.2s."
    #retry-delay=S     with #error=429: the delay it asks for (default 7.2 s)
    #slow=SECONDS      wait before answering
    #midstream-error   stream: one chunk, then an in-stream error object (500 INTERNAL), as Google does
    #midstream-drop    stream: one chunk, then close the connection abruptly
    #think             add a thought part ({"text", "thought": true}) and thoughtsTokenCount

The reply text is "echo: <last user text>", followed for every inline data part by
"[inline <mime> <decoded length> bytes sha256=<hex>]". A `thoughtSignature` found on
any request part comes back on a part of the answer. Every answer also carries
an unknown top-level field, `fakeUnknownField`, to prove that unknown fields pass.
"""

from executors.standin.server import GeminiStandIn, RecordedRequest

__all__ = ["GeminiStandIn", "RecordedRequest"]
