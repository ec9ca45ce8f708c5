// The signed-in user's open tasks, from TaskPilot's REST API. `version` changes when the assistant
// reports `tasks.changed`, which makes the list load again.

import { useEffect, useState } from "react";

import { problemMessage } from "./auth.js";

export function TaskList({ apiBase, apiFetch, version, onRefresh }) {
  const [state, setState] = useState({ loading: true, tasks: [], error: null });
  useEffect(() => {
    let active = true;
    setState((s) => ({ ...s, loading: true }));
    (async () => {
      try {
        const response = await apiFetch(new URL("api/tasks?status=open&sort=due_date&limit=100", apiBase));
        if (!response.ok) throw new Error(await problemMessage(response));
        const body = await response.json();
        if (active) setState({ loading: false, tasks: body.items, error: null });
      } catch (error) {
        if (active) setState((s) => ({ ...s, loading: false, error: error.message }));
      }
    })();
    return () => {
      active = false;
    };
  }, [apiBase, apiFetch, version]);

  return (
    <aside className="tasks" aria-labelledby="tasks-title" aria-busy={state.loading}>
      <header>
        <h2 id="tasks-title">Open tasks</h2>
        <button type="button" className="btn btn-ghost" onClick={onRefresh} aria-label="Refresh tasks">
          ↻
        </button>
      </header>
      {state.error ? <p className="error" role="alert">{state.error}</p> : null}
      {!state.error && !state.loading && state.tasks.length === 0 ? <p className="muted">Nothing open.</p> : null}
      <ul className="task-list">
        {state.tasks.map((task) => (
          <li key={task.id} className="task" data-task-id={task.id}>
            <span className="task-title">{task.title}</span>
            {task.due_date ? <span className="muted"> · due {task.due_date}</span> : null}
          </li>
        ))}
      </ul>
    </aside>
  );
}
