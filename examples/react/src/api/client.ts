// TaskPilot's REST API through a client generated from its spec: `schema.d.ts` is what
// `npm run gen:api` (openapi-typescript) makes of openapi/openapi.json, and openapi-fetch sends the
// calls. A path, method, parameter or body the spec does not have is a type error
// (`npm run typecheck`), and every answer has the spec's type.

import createClient, { type Client } from "openapi-fetch";
import type { SessionRoutes } from "taskpilot/hosted-session";

import type { components, paths } from "./schema.d.ts";

export type TaskPilotClient = Client<paths>;
type Schemas = components["schemas"];
export type Task = Schemas["Task"];
export type TaskSummary = Schemas["TaskSummary"];
export type ChatKitHealth = Schemas["ChatKitHealth"];
export type Problem = Schemas["Problem"];
/** The request headers POST /chatkit declares: what the app's `fetch` may add to ChatKit's requests. */
export type ChatKitRequestHeaders = NonNullable<paths["/chatkit"]["post"]["parameters"]["header"]>;

/**
 * A client for TaskPilot at `apiBase` (its URL, ending in "/"). Without `fetch` it sends no
 * credentials (health, development tokens, the session routes, which add their own bearer token);
 * with the app's `bearerFetch`, every call carries the user's token and Time-Zone.
 */
export function taskPilotClient(apiBase: string, fetch?: typeof globalThis.fetch): TaskPilotClient {
  return createClient<paths>({ baseUrl: apiBase, ...(fetch ? { fetch } : {}) });
}

/** Words for a failed call: problem+json `title: detail` when TaskPilot sent one. */
export function problemMessage(error: unknown, response: Response): string {
  const problem = error !== null && typeof error === "object" ? (error as Partial<Problem>) : null;
  if (typeof problem?.detail === "string" && problem.detail) return `${problem.title ?? "Error"}: ${problem.detail}`;
  return `TaskPilot answered HTTP ${response.status}`;
}

/** What a call answered, or an Error in words when TaskPilot refused it (or answered nothing). */
export async function answered<T>(call: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  const { data, error, response } = await call;
  if (!response.ok || data === undefined) throw new Error(problemMessage(error, response));
  return data;
}

/**
 * One of the user's tasks (GET /api/tasks/{task_id}), or null when TaskPilot knows no such task of
 * theirs (404: another user's, or deleted): what a hover preview shows.
 */
export async function taskOrNone(client: TaskPilotClient, taskId: string): Promise<Task | null> {
  const { data, error, response } = await client.GET("/api/tasks/{task_id}", { params: { path: { task_id: taskId } } });
  if (response.status === 404) return null;
  if (!response.ok || data === undefined) throw new Error(problemMessage(error, response));
  return data;
}

/**
 * Hosted mode's session routes for TaskPilot's shared provider (`taskpilot/hosted-session`, whose
 * rules decide when to mint, refresh or cancel): the same three calls, typed by the spec. `client`
 * sends no credentials of its own; each call carries the bearer token the provider passes.
 */
export function sessionRoutes(client: TaskPilotClient): SessionRoutes {
  const signed = (bearer: string) => ({ headers: { Authorization: `Bearer ${bearer}` }, credentials: "omit", cache: "no-store" }) as const;
  const settled = ({ data, error, response }: { data?: unknown; error?: unknown; response: Response }) => ({ response, body: data ?? error ?? null });
  return {
    mint: async (bearer) => settled(await client.POST("/api/chatkit/sessions", signed(bearer))),
    refresh: async (bearer, currentClientSecret) =>
      settled(await client.POST("/api/chatkit/sessions/refresh", { ...signed(bearer), body: { current_client_secret: currentClientSecret } })),
    cancel: (bearer, sessionId) =>
      client.DELETE("/api/chatkit/sessions/{session_id}", { ...signed(bearer), params: { path: { session_id: sessionId } }, keepalive: true }),
  };
}
