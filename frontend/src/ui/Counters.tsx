import type { StatusSnapshot } from "../status";

export function Counters({ status }: { status: StatusSnapshot }) {
  const max = status.identity?.maxConcurrency;
  return (
    <section className="card counters" aria-label="Tasks">
      <div className="counter">
        <span className="counter-label">In flight</span>
        <span className="counter-value">
          <span data-testid="tasks-in-flight">{status.inFlight}</span>
          {max !== undefined && (
            <span className="counter-of">
              {" / "}
              <span data-testid="max-concurrency">{max}</span>
            </span>
          )}
        </span>
      </div>
      <div className="counter">
        <span className="counter-label">Served</span>
        <span className="counter-value" data-testid="served-count">
          {status.served}
        </span>
        <span className="counter-note" title="Answers relayed with an upstream error status (4xx or 5xx), such as 429 quota exhausted">
          <span data-testid="upstream-error-count">{status.upstreamErrors}</span> with upstream errors
        </span>
      </div>
      <div className="counter">
        <span className="counter-label">Failed</span>
        <span className={`counter-value${status.failed ? " is-bad" : ""}`} data-testid="failed-count">
          {status.failed}
        </span>
      </div>
      <div className="counter">
        <span className="counter-label">Cancelled</span>
        <span className="counter-value" data-testid="cancelled-count">
          {status.cancelled}
        </span>
      </div>
    </section>
  );
}
