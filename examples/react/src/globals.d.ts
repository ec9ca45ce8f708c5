// Defined by vite.config.js: TaskPilot's own page under `npm run dev` (the proxy's target), "" in a build.
declare const __TASKPILOT_PROXY_TARGET__: string;
