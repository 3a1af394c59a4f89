import { useEffect, useState, type FormEvent } from "react";

import type { ConnectionStatus } from "../connection";
import type { ExecutorRuntime } from "../runtime";
import { DEFAULT_UPSTREAM, MAX_CONCURRENCY_LIMIT, type Settings, type SettingsError } from "../settings";

interface SettingsFormProps {
  runtime: ExecutorRuntime;
  booted: Promise<SettingsError | null>;
  connection: ConnectionStatus;
}

export function SettingsForm({ runtime, booted, connection }: SettingsFormProps) {
  const [values, setValues] = useState<Settings>(runtime.settings);
  const [error, setError] = useState<SettingsError | null>(null);
  const [showToken, setShowToken] = useState(false);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    let live = true;
    void booted.then((bootError) => {
      if (live) setError(bootError);
    });
    return () => {
      live = false;
    };
  }, [booted]);

  const set = <K extends keyof Settings>(field: K, value: Settings[K]) => setValues((old) => ({ ...old, [field]: value }));

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    try {
      const problem = await runtime.connect(values);
      setError(problem);
      if (!problem) setValues(runtime.settings);
    } finally {
      setBusy(false);
    }
  };

  const forget = () => {
    runtime.forget();
    setValues(runtime.settings);
    setError(null);
  };

  const active = connection.state === "connected" || connection.state === "connecting" || connection.state === "disconnected";
  const fieldError = (field: keyof Settings) =>
    error?.field === field ? (
      <span className="field-error" data-testid="settings-error" role="alert">
        {error.message}
      </span>
    ) : null;

  return (
    <section className="card settings">
      <h2>Gateway</h2>
      <form onSubmit={submit} data-testid="settings-form" noValidate>
        <label className="field">
          <span>Gateway URL</span>
          <input
            data-testid="server-input"
            type="url"
            inputMode="url"
            placeholder="https://gemproxy.example.com"
            value={values.server}
            onChange={(event) => set("server", event.target.value)}
            autoComplete="off"
            spellCheck={false}
          />
          {fieldError("server")}
        </label>
        <label className="field">
          <span>Executor token</span>
          <span className="with-button">
            <input
              data-testid="token-input"
              type={showToken ? "text" : "password"}
              placeholder="gpe_…"
              value={values.token}
              onChange={(event) => set("token", event.target.value)}
              autoComplete="off"
              spellCheck={false}
            />
            <button type="button" className="quiet-button" onClick={() => setShowToken((shown) => !shown)}>
              {showToken ? "Hide" : "Show"}
            </button>
          </span>
          {fieldError("token")}
        </label>

        <details className="advanced" open={error?.field === "upstream" || error?.field === "maxConcurrency" || undefined}>
          <summary>Advanced</summary>
          <label className="field">
            <span>Gemini base URL</span>
            <input
              data-testid="upstream-input"
              type="url"
              placeholder={DEFAULT_UPSTREAM}
              value={values.upstream}
              onChange={(event) => set("upstream", event.target.value)}
              autoComplete="off"
              spellCheck={false}
            />
            {fieldError("upstream")}
          </label>
          <label className="field">
            <span>Concurrent tasks</span>
            <input
              data-testid="concurrency-input"
              type="number"
              min={1}
              max={MAX_CONCURRENCY_LIMIT}
              value={Number.isNaN(values.maxConcurrency) ? "" : values.maxConcurrency}
              onChange={(event) => set("maxConcurrency", event.target.valueAsNumber)}
            />
            {fieldError("maxConcurrency")}
          </label>
          <label className="field">
            <span>Tab name (optional)</span>
            <input
              data-testid="label-input"
              type="text"
              placeholder="shown in the gateway's logs"
              value={values.label}
              onChange={(event) => set("label", event.target.value)}
              autoComplete="off"
            />
          </label>
        </details>

        <div className="actions">
          <button type="submit" className="primary-button" data-testid="connect-button" disabled={busy}>
            {active ? "Save and reconnect" : "Connect"}
          </button>
          <button
            type="button"
            className="quiet-button"
            data-testid="disconnect-button"
            disabled={!active}
            onClick={() => runtime.disconnect()}
          >
            Disconnect
          </button>
        </div>
      </form>
      <p className="hint">
        Remembered in this browser only; each tab is its own executor.{" "}
        <button
          type="button"
          className="link-button"
          data-testid="forget-button"
          onClick={forget}
          title="Remove the gateway URL and token from this browser"
        >
          Forget them
        </button>
      </p>
    </section>
  );
}
