// What both modes share: the look and the start screen.

import type { StartScreenOption, ThemeOption } from "@openai/chatkit-react";

export const theme: ThemeOption = {
  colorScheme: "light",
  radius: "round",
  color: { accent: { primary: "#e8590c", level: 1 } },
};

export const startScreen: StartScreenOption = {
  greeting: "What needs doing? I can add, find, update and finish your tasks.",
  prompts: [
    { label: "Add a task", prompt: "Add a task to buy milk tomorrow", icon: "plus" },
    { label: "What's open?", prompt: "Show my open tasks", icon: "check-circle" },
  ],
};

export const placeholder = "Ask me to add, list, or finish tasks…";

/** The thread to reopen after a reload, per mode and user (localStorage; ids only). */
export function threadMemory(key: string): { initial(): string | null; remember(threadId: string | null): void } {
  return {
    initial() {
      try {
        return window.localStorage.getItem(key);
      } catch {
        return null;
      }
    },
    remember(threadId) {
      try {
        if (threadId) window.localStorage.setItem(key, threadId);
        else window.localStorage.removeItem(key);
      } catch {
        // private mode: a new thread after reload
      }
    },
  };
}
