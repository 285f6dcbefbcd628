// The dashboard's live preview: the real widget, with the appearance being edited laid over
// the saved one. The parent page puts the public key and the appearance in this page's hash.
(function () {
  var params = new URLSearchParams(location.hash.slice(1));
  var key = params.get("key");
  var looks = {};
  try {
    looks = JSON.parse(params.get("appearance") || "{}");
  } catch (e) {
    looks = {};
  }
  var nativeFetch = window.fetch.bind(window);
  window.fetch = function (input, init) {
    var url = typeof input === "string" ? input : input.url;
    var call = nativeFetch(input, init);
    if (url.indexOf("/api/widget/config") < 0) return call;
    return call.then(function (response) {
      if (!response.ok) return response;
      return response.json().then(function (config) {
        for (var name in looks) if (looks[name] !== null && looks[name] !== "") config.appearance[name] = looks[name];
        return new Response(JSON.stringify(config), { status: 200, headers: { "Content-Type": "application/json" } });
      });
    });
  };
  if (!key) return;
  var script = document.createElement("script");
  script.src = "/widget.js";
  script.async = true;
  script.dataset.assistant = key;
  script.dataset.open = "true";
  document.body.appendChild(script);
  window.addEventListener("hashchange", function () { location.reload(); });
})();
