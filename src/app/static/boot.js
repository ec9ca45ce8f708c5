// Runs before ChatKit's CDN script and before the page's modules (which are deferred). An async
// <script> reports a failed load once, possibly before any module could listen, so this records
// it: `window.taskpilotBoot.chatkit` is "pending", "loaded" or "failed", and a
// `taskpilot:chatkit-failed` event fires on window when the load fails.
(function () {
  "use strict";
  var state = (window.taskpilotBoot = window.taskpilotBoot || { chatkit: "pending" });

  function isChatKitScript(target) {
    return Boolean(target && target.tagName === "SCRIPT" && target.hasAttribute("data-chatkit"));
  }

  // Load and error events of elements do not bubble; a capturing listener on document sees them.
  document.addEventListener(
    "error",
    function (event) {
      if (isChatKitScript(event.target)) {
        state.chatkit = "failed";
        window.dispatchEvent(new Event("taskpilot:chatkit-failed"));
      }
    },
    true
  );
  document.addEventListener(
    "load",
    function (event) {
      if (isChatKitScript(event.target)) {
        state.chatkit = "loaded";
      }
    },
    true
  );
})();
