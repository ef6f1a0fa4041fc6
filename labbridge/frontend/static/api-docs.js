// /docs (Swagger UI) and /redoc: the API description, fetched with the token the dashboard keeps,
// since with auth_reads /openapi.json is served only with one. The pages themselves hold nothing about the lab.
"use strict";
(() => {
  let token = null;
  try { token = localStorage.getItem("bridge-token"); } catch { /* storage blocked: no token */ }
  const withToken = (headers) => {
    if (token && !headers.Authorization) headers.Authorization = `Bearer ${token}`;  // one set by hand wins
    return headers;
  };
  if (window.SwaggerUIBundle) {
    window.ui = SwaggerUIBundle({
      url: "/openapi.json", dom_id: "#swagger-ui", layout: "BaseLayout", deepLinking: true,
      showExtensions: true, showCommonExtensions: true,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
      // Every request Swagger UI sends (the schema, and "Try it out") carries the token.
      requestInterceptor: (request) => { withToken(request.headers); return request; },
    });
    return;
  }
  const root = document.getElementById("redoc");
  fetch("/openapi.json", { headers: withToken({ Accept: "application/json" }) })
    .then(async (response) => {
      const body = await response.json();
      if (!response.ok) throw new Error(body.message || `HTTP ${response.status}`);
      Redoc.init(body, {}, root);
    })
    .catch((failure) => {
      root.textContent = `Cannot load the API description: ${failure.message}. Enter your token on the dashboard first.`;
    });
})();
