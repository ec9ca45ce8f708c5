import { StrictMode } from "react";
import { createRoot } from "react-dom/client";

import { App } from "./App.jsx";
import { loadChatKitScript } from "./chatkit-script.js";
import "./styles.css";

loadChatKitScript(); // start fetching ChatKit's web component from OpenAI's CDN at once

createRoot(document.getElementById("root")).render(
  <StrictMode>
    <App />
  </StrictMode>
);
