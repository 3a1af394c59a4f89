import { useState } from "react";

import type { ExecutorRuntime } from "../runtime";
import type { SelfTestResult } from "../selftest";

type State = { phase: "idle" } | { phase: "running" } | { phase: "done"; result: SelfTestResult; upstream: string };

const SHOWN_MODELS = 8;

export function SelfTest({ runtime }: { runtime: ExecutorRuntime }) {
  const [state, setState] = useState<State>({ phase: "idle" });

  const run = async () => {
    const upstream = runtime.settings.upstream;
    setState({ phase: "running" });
    setState({ phase: "done", result: await runtime.selfTest(upstream), upstream });
  };

  return (
    <section className="card selftest">
      <h2>Self-test</h2>
      <p className="hint">
        Lists the models upstream, the way tasks reach it (or, if that fails, counts the tokens of one word). In AI
        Studio this shows that your account authorises this tab.
      </p>
      <button
        type="button"
        className="quiet-button"
        data-testid="self-test-button"
        onClick={() => void run()}
        disabled={state.phase === "running"}
      >
        {state.phase === "running" ? "Asking…" : "List models upstream"}
      </button>
      {state.phase === "done" && <SelfTestOutcome result={state.result} upstream={state.upstream} />}
    </section>
  );
}

function SelfTestOutcome({ result, upstream }: { result: SelfTestResult; upstream: string }) {
  if (!result.ok) {
    return (
      <div className="selftest-result tone-bad" data-testid="self-test-result" data-state="error" role="alert">
        <strong>Failed.</strong> {result.message}
        {(result.status === 401 || result.status === 403) && (
          <p className="muted">
            Google refuses calls that carry no API key unless AI Studio authorises them: run this app inside AI Studio.
          </p>
        )}
      </div>
    );
  }
  if (result.via === "countTokens") {
    return (
      <div className="selftest-result tone-good" data-testid="self-test-result" data-state="ok" data-via="countTokens">
        <strong>Authorised.</strong> countTokens on <code>{result.model}</code> answered ({result.totalTokens} token
        {result.totalTokens === 1 ? "" : "s"}) at <code>{upstream}</code>.
        <p className="muted">Listing the models failed ({result.listFailure}); tasks can still be served.</p>
      </div>
    );
  }
  const shown = result.models.slice(0, SHOWN_MODELS);
  return (
    <div className="selftest-result tone-good" data-testid="self-test-result" data-state="ok" data-via="models.list">
      <strong>
        {result.models.length} model{result.models.length === 1 ? "" : "s"}
      </strong>{" "}
      available at <code>{upstream}</code>
      {shown.length > 0 && (
        <ul className="models">
          {shown.map((name) => (
            <li key={name}>{name}</li>
          ))}
          {result.models.length > shown.length && <li className="muted">and {result.models.length - shown.length} more</li>}
        </ul>
      )}
    </div>
  );
}
