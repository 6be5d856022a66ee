/* The sign-in page: the key goes to POST /v1/session; the service sets its session cookie;
   the browser returns to the page it came from (a path of this service only). Someone
   already signed in sees who they are, the service's pages and «Выйти». */
"use strict";

(async function () {
  const params = new URLSearchParams(location.search);
  const next = params.get("next");
  const target = next && next.startsWith("/") && !next.startsWith("//") ? next : null;
  const form = document.getElementById("form");
  // The handlers first, before anything is awaited: a key typed at once never goes out as
  // a native form submission (into the address).
  let listed = { service: "", pages: [] };
  const pagesLoaded = iomflow.api("/ui/pages").then((l) => (listed = l)).catch(() => listed);
  document.getElementById("signout").addEventListener("click", iomflow.signOut);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = document.getElementById("key").value.trim();
    const button = document.getElementById("submit");
    button.disabled = true;
    try {
      const who = await iomflow.api("/v1/session", { method: "POST", body: { key }, signingIn: true });
      await pagesLoaded;
      const home = target || (listed.pages[0] && listed.pages[0].path);
      if (home) location.assign(home);
      else {
        showSigned(who);
        button.disabled = false;
      }
    } catch (err) {
      iomflow.say(iomflow.errorText(err), "error");
      button.disabled = false;
    }
  });
  document.getElementById("submit").disabled = false;
  document.body.dataset.ready = "true";
  await pagesLoaded;
  if (listed.service) document.getElementById("service").textContent = listed.service;

  if (params.get("out") === "1") iomflow.say("Вы вышли. Чтобы продолжить, войдите снова.", "ok");
  else if (params.get("expired") === "1") iomflow.say("Сеанс истёк или не начат: войдите, чтобы продолжить.");
  else if (listed.who) showSigned(listed.who);

  function showSigned(who) {
    form.hidden = true;
    document.getElementById("signed").hidden = false;
    document.getElementById("who").textContent = who.name;
    document.getElementById("roles").textContent = `(${who.role_names.join(", ")})`;
    const list = document.getElementById("pages");
    list.replaceChildren(...listed.pages.map((p) => {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = p.path;
      link.textContent = p.title;
      item.append(link);
      return item;
    }));
    if (!listed.pages.length) {
      const item = document.createElement("li");
      item.className = "muted";
      item.textContent = "У этого сервиса нет страниц: его API описан на странице /docs.";
      list.append(item);
    }
  }

})();
