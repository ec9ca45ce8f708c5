import { useEffect, useState, type ReactNode } from "react";

export function Notice({ title, children, actions }: { title: string; children: ReactNode; actions?: ReactNode }) {
  return (
    <div className="center">
      <div className="notice" role="alert">
        <h2>{title}</h2>
        <p className="notice-text">{children}</p>
        <div className="notice-actions">{actions}</div>
      </div>
    </div>
  );
}

/** A Retry button that waits out the server's Retry-After (seconds) before it can be pressed. */
export function RetryButton({ after, onRetry }: { after: number; onRetry: () => void }) {
  const [left, setLeft] = useState(after > 0 ? after : 0);
  useEffect(() => {
    if (left <= 0) return undefined;
    const timer = setTimeout(() => setLeft(left - 1), 1000);
    return () => clearTimeout(timer);
  }, [left]);
  return (
    <button type="button" className="btn btn-solid" data-action="retry" disabled={left > 0} onClick={onRetry}>
      {left > 0 ? `Retry in ${left} s` : "Retry"}
    </button>
  );
}
