// Deliberately wrong ChatKit options for useChatKit. They prove `npm run typecheck` bites:
// tests/unit/test_chatkit_option_types.py runs tsc with the app's settings over this file
// (tsconfig.json here) and expects an error on each line marked `// wrong:` and on no other line.
// Not part of the app: tsconfig.json checks src/ and Vite builds from index.html.

import { ChatKit, useChatKit } from "@openai/chatkit-react";
import { answerClientTool, composerChoices, withClientTools } from "taskpilot/chatkit-options";
import { taskEntities } from "taskpilot/entities";

export function WrongOptions() {
  const chatkit = useChatKit({
    api: {
      url: "/chatkit",
      domainKey: "domain_pk_localhost_dev",
      fetch: (input, init) => fetch(input, withClientTools(input, init)),
      uploadStrategy: { type: "three_phase" }, // wrong: ChatKit uploads "two_phase" or "direct"
    },
    locale: "xx", // wrong: not a locale ChatKit supports
    theme: { colorScheme: "light", radius: "round", color: { accent: { primary: "#e8590c", level: 7 } } }, // wrong: accent levels are 0 to 3
    composer: {
      attachments: { enabled: true, accept: ["image/png"] }, // wrong: accept maps MIME types to extensions
      tools: [{ id: "x", label: "X", icon: "rocket-ship" }], // wrong: not a ChatKit icon
    },
    threadItemActions: { feedback: "yes" }, // wrong: a boolean
    onClientTool: answerClientTool,
    onThreadChange: ({ thread }) => thread, // wrong: the event has threadId
  });
  composerChoices({ tools: [{ id: "a", label: "A", icon: "rocket-ship", placeholder: "" }], models: [] }); // wrong: the shared module's types reach the app
  taskEntities(async () => ({ items: [{ id: 7, title: "t", number: 1, completed: false }] }), () => {}); // wrong: task ids are strings
  return <ChatKit control={chatkit.control} />;
}
