// Swagger UI for passflow: the spec from this server, the OAuth2 password
// flow's Authorize dialog, and the login kept across reloads.
window.addEventListener('load', function () {
  var ui = SwaggerUIBundle({
    url: '../openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    // Keep the access token in localStorage, so a reload stays logged in.
    persistAuthorization: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: 'BaseLayout'
  });
  // The dialog's defaults (client credentials in a Basic header, both
  // empty, which sends "Basic Og==") are no client authentication to
  // passflow, so they work as they are.
  ui.initOAuth({ appName: 'passflow', scopeSeparator: ' ' });
  window.ui = ui;
});
