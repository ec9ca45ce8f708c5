import { StrictMode } from "react";
import { createRoot } from "react-dom/client";

import { App } from "./App.tsx";
import { loadChatKitScript } from "./chatkit-script.js";
import "./styles.css";

loadChatKitScript(); // start fetching ChatKit's web component from OpenAI's CDN at once

const root = document.getElementById("root");
if (!root) throw new Error("index.html has no #root element");
createRoot(root).render(
  <StrictMode>
    <App />
  </StrictMode>
);
