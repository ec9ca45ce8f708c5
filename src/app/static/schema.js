// The reference UI at /schema: Swagger UI from the server's own copy (the swagger-ui-py
// package), started here because the page's Content-Security-Policy allows no inline script.
const root = document.getElementById("swagger-ui");
window.SwaggerUIBundle({
  url: root.dataset.openapiUrl,
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [window.SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
