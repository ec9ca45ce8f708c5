// Self-hosted mode: TaskPilot is the ChatKit server. ChatKit posts every request to
// <TaskPilot>/chatkit through `apiFetch`, which adds the user's bearer token.

import { ChatKit, useChatKit } from "@openai/chatkit-react";
import { useState } from "react";

import { placeholder, startScreen, theme, threadMemory } from "./look.js";

export function SelfHostedChat({ apiBase, domainKey, apiFetch, user, onTasksChanged, onFailure }) {
  const [thread] = useState(() => threadMemory(`taskpilot-example.thread:self-hosted:${user}`));
  const [initialThread] = useState(() => thread.initial());

  // [readme:self-hosted]
  const chatkit = useChatKit({
    api: {
      url: new URL("chatkit", apiBase).toString(),
      domainKey,
      fetch: apiFetch, // adds Authorization: Bearer <token>
      uploadStrategy: { type: "two_phase" }, // attachments.create, then a PUT to the signed URL
    },
    composer: { placeholder, attachments: { enabled: true, maxCount: 5, maxSize: 10 * 1024 * 1024 } },
    startScreen,
    theme,
    history: { enabled: true },
    initialThread,
    onThreadChange: ({ threadId }) => thread.remember(threadId),
    onEffect: ({ name }) => {
      if (name === "tasks.changed") onTasksChanged(); // the assistant changed tasks: GET /api/tasks again
    },
    onError: ({ error }) => onFailure(error),
  });
  // [/readme:self-hosted]

  return <ChatKit control={chatkit.control} className="chatkit" />;
}
