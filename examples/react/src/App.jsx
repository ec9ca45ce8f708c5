// TaskPilot from React: a chat (ChatKit through @openai/chatkit-react) beside the user's open
// tasks, in either mode:
// - self-hosted (SelfHostedChat.jsx): TaskPilot answers ChatKit at /chatkit;
// - hosted (HostedChat.jsx): OpenAI runs the Agent Builder workflow, TaskPilot mints the sessions.
// The default is whichever mode TaskPilot has configured (self-hosted when both); `?mode=` picks.

import { browserTimeZone } from "taskpilot/chatkit-options";
import { createClientSecretProvider, describeClientSecretError } from "taskpilot/hosted-session";
import { useCallback, useEffect, useMemo, useState } from "react";

import { bearerFetch, createTokenSource, devToken, problemMessage, tokenFromUrl } from "./auth.js";
import { loadChatKitScript } from "./chatkit-script.js";
import { config } from "./config.js";
import { HostedChat } from "./HostedChat.jsx";
import { Notice } from "./Notice.jsx";
import { SelfHostedChat } from "./SelfHostedChat.jsx";
import { TaskList } from "./TaskList.jsx";

const MODES = ["self-hosted", "hosted"];
const DEV_USER_KEY = "taskpilot-example.devUser";

function chooseMode(health) {
  const asked = new URLSearchParams(window.location.search).get("mode");
  if (MODES.includes(asked)) return asked;
  return health.hosted?.ready && !health.self_hosted?.ready ? "hosted" : "self-hosted";
}

function storedDevUser() {
  try {
    return window.localStorage.getItem(DEV_USER_KEY);
  } catch {
    return null;
  }
}

export function App() {
  const { apiBase, tokenUrl, domainKey } = config;
  const [health, setHealth] = useState(null);
  const [healthError, setHealthError] = useState(null);
  const [mode, setModeState] = useState(null);
  const [devUser, setDevUser] = useState(storedDevUser);
  const [script, setScript] = useState("loading");
  // Each change of the list: a counter (reload) and the task ids the assistant named (marked).
  const [tasksChange, setTasksChange] = useState({ version: 0, ids: [] });
  const [focus, setFocus] = useState(null); // {id, at}: the task an entity click asked for
  const [failure, setFailure] = useState(null);

  useEffect(() => {
    loadChatKitScript().then(setScript);
  }, []);

  const loadHealth = useCallback(async () => {
    setHealthError(null);
    try {
      const response = await fetch(new URL("api/chatkit/health", apiBase));
      if (!response.ok) throw new Error(await problemMessage(response));
      const body = await response.json();
      setHealth(body);
      setModeState((current) => current ?? chooseMode(body));
    } catch (error) {
      setHealthError(`Cannot reach TaskPilot at ${apiBase} (${error.message}). Is it running (make run)?`);
    }
  }, [apiBase]);
  useEffect(() => {
    loadHealth();
  }, [loadHealth]);

  // Who is signed in, and where their tokens come from. Replace this with your sign-in service:
  // with Better Auth, `createTokenSource(async () => (await authClient.token()).data?.token)`.
  const hostToken = typeof window.taskpilotToken === "function" ? window.taskpilotToken : null;
  const source = hostToken ? "host" : tokenUrl ? "url" : "dev";
  const user = source === "dev" ? devUser : "you";
  const tokens = useMemo(() => {
    if (source === "host") return createTokenSource(() => hostToken());
    if (source === "url") return createTokenSource(tokenFromUrl(tokenUrl));
    return devUser ? createTokenSource(devToken(apiBase, devUser)) : null;
  }, [source, hostToken, tokenUrl, apiBase, devUser]);
  // Every call to TaskPilot (ChatKit's and the task list's) says where the user is: "today" and
  // "tomorrow" are their dates, not UTC's.
  const apiFetch = useMemo(() => (tokens ? bearerFetch(tokens, { timeZone: browserTimeZone() }) : null), [tokens]);

  // [readme:secrets]
  const secrets = useMemo(
    () =>
      tokens &&
      createClientSecretProvider({
        baseUrl: apiBase, // TaskPilot, which holds the API key and the workflow id
        getToken: () => tokens.token(), // the user's bearer token; null when signed out
        invalidateToken: (token) => tokens.invalidate(token),
        storage: window.sessionStorage, // this tab only: never a cookie or the URL
      }),
    [apiBase, tokens]
  );
  // [/readme:secrets]

  const setMode = (next) => {
    setFailure(null);
    setModeState(next);
    const search = new URLSearchParams(window.location.search);
    search.set("mode", next);
    window.history.replaceState(null, "", `${window.location.pathname}?${search}`);
  };

  const signOut = async () => {
    await secrets?.release(); // cancel this user's hosted session while the token still works
    window.localStorage.removeItem(DEV_USER_KEY);
    setDevUser(null);
  };

  const onTasksChanged = useCallback((ids = []) => setTasksChange((c) => ({ version: c.version + 1, ids })), []);
  const onFocusTask = useCallback((id) => setFocus({ id: String(id), at: Date.now() }), []);
  const onFailure = useCallback((error) => setFailure(error), []);

  if (healthError) {
    return (
      <Shell>
        <Notice title="TaskPilot is not reachable" actions={<button type="button" className="btn btn-solid" onClick={loadHealth}>Retry</button>}>
          {healthError}
        </Notice>
      </Shell>
    );
  }
  if (!health || !mode) {
    return <Shell><p className="muted center">Connecting to TaskPilot…</p></Shell>;
  }
  if (!tokens) {
    return (
      <Shell>
        {health.auth_mode === "dev" ? (
          <DevSignIn apiBase={apiBase} onSignedIn={setDevUser} />
        ) : (
          <Notice title="Sign in through your application">
            TaskPilot accepts JWTs from your sign-in service. Set VITE_TASKPILOT_TOKEN_URL (Better Auth:
            https://app.example.com/api/auth/token) or define window.taskpilotToken; see README.md.
          </Notice>
        )}
      </Shell>
    );
  }

  return (
    <Shell
      mode={mode}
      onMode={setMode}
      hostedReady={Boolean(health.hosted?.ready)}
      user={user}
      onSignOut={source === "dev" ? signOut : null}
    >
      {failure ? (
        <p className="status error" role="alert">
          {describeClientSecretError(failure)}
        </p>
      ) : null}
      <div className="body">
        <main className="chat" aria-label="Assistant" data-mode={mode} data-script={script}>
          {mode === "hosted" ? (
            <HostedChat
              key={`hosted:${user}`}
              secrets={secrets}
              script={script}
              configured={health.hosted?.ready}
              user={user}
              onTasksChanged={onTasksChanged}
              onFailure={onFailure}
              onUseSelfHosted={() => setMode("self-hosted")}
            />
          ) : script === "failed" ? (
            <Notice title="ChatKit's script could not load">
              ChatKit's web component comes from OpenAI's CDN, which this browser cannot reach. TaskPilot's own page (
              <a href={apiBase}>{apiBase}</a>) has a built-in console that works without it.
            </Notice>
          ) : script === "loaded" ? (
            <SelfHostedChat
              key={`self-hosted:${user}`}
              apiBase={apiBase}
              domainKey={domainKey}
              apiFetch={apiFetch}
              health={health}
              user={user}
              onTasksChanged={onTasksChanged}
              onFocusTask={onFocusTask}
              onFailure={onFailure}
            />
          ) : (
            <p className="muted center">Loading ChatKit…</p>
          )}
        </main>
        <TaskList apiBase={apiBase} apiFetch={apiFetch} change={tasksChange} focus={focus} onRefresh={onTasksChanged} />
      </div>
    </Shell>
  );
}

function Shell({ children, mode, onMode, hostedReady, user, onSignOut }) {
  return (
    <div className="app" data-ready={mode ? "true" : "false"}>
      <header className="topbar">
        <strong className="brand">TaskPilot</strong>
        <span className="muted">React example</span>
        {mode && (hostedReady || mode === "hosted") ? (
          <div className="modes" role="group" aria-label="ChatKit mode">
            {MODES.map((m) => (
              <button key={m} type="button" className="mode" data-mode={m} aria-pressed={m === mode} onClick={() => onMode(m)}>
                {m === "hosted" ? "Hosted" : "Self-hosted"}
              </button>
            ))}
          </div>
        ) : null}
        {user ? (
          <span className="user">
            {user}
            {onSignOut ? (
              <button type="button" className="btn btn-ghost" onClick={onSignOut}>
                Switch user
              </button>
            ) : null}
          </span>
        ) : null}
      </header>
      {children}
    </div>
  );
}

function DevSignIn({ apiBase, onSignedIn }) {
  const [name, setName] = useState("");
  const [error, setError] = useState(null);
  const submit = async (event) => {
    event.preventDefault();
    const user = name.trim();
    if (!user) return;
    try {
      await devToken(apiBase, user)(); // refused names are reported before anything changes
      window.localStorage.setItem(DEV_USER_KEY, user);
      onSignedIn(user);
    } catch (failure) {
      setError(failure.message);
    }
  };
  return (
    <div className="center">
      <form className="signin" onSubmit={submit}>
        <h2>Sign in for development</h2>
        <p className="muted">TaskPilot runs with AUTH_MODE=dev: any user name gets a development token.</p>
        <label htmlFor="user-name">User name</label>
        <div className="row">
          <input id="user-name" value={name} onChange={(e) => setName(e.target.value)} autoComplete="username" required />
          <button type="submit" className="btn btn-solid">
            Continue
          </button>
        </div>
        {error ? <p className="error" role="alert">{error}</p> : null}
      </form>
    </div>
  );
}
