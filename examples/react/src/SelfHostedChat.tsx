// Self-hosted mode: TaskPilot is the ChatKit server. ChatKit posts every request to
// <TaskPilot>/chatkit through `apiFetch`, which adds the user's bearer token and the browser's
// time zone. The options are the ones TaskPilot's own page gives the web component in this mode
// (src/app/static/chatkit-options.js `selfHostedOptions`), from the same shared modules:
// - `taskpilot/chatkit-options`: the `get_time_zone` client tool, feedback and retry on each
//   answer, and the composer's tools and models that GET /api/chatkit/health offers;
// - `taskpilot/entities`: @-mentions of the user's tasks (GET /api/tasks?q=); a click on a tagged
//   task, or on one an answer names, focuses it in the task list.

import { ChatKit, useChatKit } from "@openai/chatkit-react";
import { afterSyncActions, answerClientTool, changedTaskIds, composerAttachments, composerChoices, THREAD_ITEM_ACTIONS, withClientTools } from "taskpilot/chatkit-options";
import { taskEntities } from "taskpilot/entities";
import { useMemo, useState } from "react";

import { answered, type ChatKitHealth, type TaskPilotClient } from "./api/client.ts";
import { placeholder, startScreen, theme, threadMemory } from "./look.ts";

type Props = {
  apiBase: string; // TaskPilot's URL, ending in "/"
  domainKey: string;
  apiFetch: typeof fetch; // adds the bearer token and Time-Zone
  api: TaskPilotClient; // REST calls through apiFetch
  health: ChatKitHealth;
  user: string;
  onTasksChanged: (ids: string[]) => void;
  onFocusTask: (taskId: string) => void;
  onFailure: (error: unknown) => void;
};

export function SelfHostedChat({ apiBase, domainKey, apiFetch, api, health, user, onTasksChanged, onFocusTask, onFailure }: Props) {
  const [thread] = useState(() => threadMemory(`taskpilot-example.thread:self-hosted:${user}`));
  const [initialThread] = useState(() => thread.initial());

  // [readme:self-hosted]
  const server = health.self_hosted; // GET /api/chatkit/health: what this TaskPilot offers
  // @-mentions: the user's tasks as ChatKit entities (GET /api/tasks?q=); a click focuses one.
  const entities = useMemo(
    () => taskEntities((query) => answered(api.GET("/api/tasks", { params: { query } })), onFocusTask),
    [api, onFocusTask]
  );
  const chatkit = useChatKit({
    api: {
      url: new URL("chatkit", apiBase).toString(),
      domainKey,
      // apiFetch adds Authorization: Bearer <token> and Time-Zone: <the browser's IANA zone>;
      // ChatKit-Client-Tools: get_time_zone says onClientTool below answers it (else never asked).
      // Done, Reopen and edits are synchronous widget actions (no stream, so no tasks.changed
      // effect): the task list reloads on their answer.
      fetch: afterSyncActions((input, init) => apiFetch(input, withClientTools(input, init)), () => onTasksChanged([])),
      uploadStrategy: { type: "two_phase" }, // attachments.create, then a PUT to the signed URL
    },
    composer: {
      placeholder,
      attachments: composerAttachments(server.attachments), // maxSize and accept: what the server takes
      // Only when health says TRANSCRIPTION_MODEL is set: otherwise input.transcribe is 501.
      dictation: { enabled: Boolean(server.dictation) },
      ...composerChoices(server.composer), // composer.tools; composer.models with MODEL_CHOICES
    },
    startScreen,
    theme,
    history: { enabled: true },
    threadItemActions: { ...THREAD_ITEM_ACTIONS }, // feedback and retry on each answer
    onClientTool: answerClientTool, // get_time_zone: asked when a request came without Time-Zone (and said it answers)
    entities, // onTagSearch: the user's tasks from GET /api/tasks?q=; onClick: focus it in the list
    initialThread,
    onThreadChange: ({ threadId }) => thread.remember(threadId),
    onEffect: ({ name, data }) => {
      // The assistant changed tasks: GET /api/tasks again, marking the ones it names.
      if (name === "tasks.changed") onTasksChanged(changedTaskIds(data));
    },
    onError: ({ error }) => onFailure(error),
  });
  // [/readme:self-hosted]

  return <ChatKit control={chatkit.control} className="chatkit" />;
}
