/* What every page of iomflow shares (window.iomflow): who is signed in, calls to the
   service's JSON API with Russian errors, sortable / searchable / filterable tables with an
   XLSX export of what is shown, messages, Russian numbers and dates. No framework, nothing
   from outside; the pages' CSP allows scripts of this service only. */
"use strict";

(function () {
  const here = () => location.pathname + location.search;

  class ApiError extends Error {
    constructor(status, body) {
      const detail = (body && (body.detail || body.title)) || `Ошибка ${status}`;
      super(typeof detail === "string" ? detail : JSON.stringify(detail));
      this.status = status;
      this.code = (body && body.code) || "";
      this.detail = this.message;
      this.errors = (body && body.errors) || [];
      this.body = body;
    }
  }

  function toSignIn(expired) {
    location.assign(`/signin?next=${encodeURIComponent(here())}${expired ? "&expired=1" : ""}`);
  }

  async function api(path, options = {}) {
    const method = (options.method || "GET").toUpperCase();
    const headers = { Accept: "application/json" };
    let body;
    if (method !== "GET" && method !== "HEAD") headers["X-Requested-With"] = "iomflow";
    if (options.form) body = options.form;
    else if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.body);
    }
    let answer;
    try {
      answer = await fetch(path, { method, headers, body, credentials: "same-origin" });
    } catch (err) {
      throw new ApiError(0, { detail: "Сервис не отвечает: проверьте соединение и повторите." });
    }
    if (answer.status === 401 && !options.signingIn) {
      toSignIn(true);
      throw new ApiError(401, { detail: "Нужно войти." });
    }
    if (answer.status === 204) return null;
    const type = answer.headers.get("content-type") || "";
    if (options.blob && answer.ok) return answer.blob();
    const parsed = type.includes("json") ? await answer.json() : { detail: await answer.text() };
    if (!answer.ok) throw new ApiError(answer.status, parsed);
    return parsed;
  }

  function errorText(err) {
    if (!(err instanceof ApiError)) return String(err && err.message ? err.message : err);
    const lines = [err.detail];
    for (const e of err.errors || []) {
      const where = Array.isArray(e.loc) ? e.loc.filter((x) => x !== "body").join(".") : e.field || "";
      lines.push(`• ${where ? where + ": " : ""}${e.msg || e.message || JSON.stringify(e)}`);
    }
    return lines.join("\n");
  }

  function say(text, kind = "info") {
    let box = document.getElementById("iomflow-say");
    if (!box) {
      box = document.createElement("div");
      box.id = "iomflow-say";
      (document.querySelector("main") || document.body).prepend(box);
    }
    const line = document.createElement("div");
    line.className = `say ${kind}`;
    line.setAttribute("role", kind === "error" ? "alert" : "status");
    line.textContent = text;
    box.replaceChildren(line);
    return line;
  }

  async function session() {
    let who;
    try {
      who = await api("/v1/session");
    } catch (err) {
      if (err.status === 401) return new Promise(() => {}); // on the way to /signin
      throw err;
    }
    const bar = document.getElementById("iomflow-bar");
    if (bar) {
      let slot = bar.querySelector(".who");
      if (!slot) {
        slot = document.createElement("div");
        slot.className = "who";
        bar.append(slot);
      }
      const name = document.createElement("b");
      name.textContent = who.name;
      const out = document.createElement("button");
      out.type = "button";
      out.id = "signout";
      out.textContent = "Выйти";
      out.addEventListener("click", signOut);
      slot.replaceChildren(name, ` (${who.role_names.join(", ")}) `, out);
    }
    return who;
  }

  async function signOut() {
    try {
      await api("/v1/session", { method: "DELETE" });
    } finally {
      location.assign("/signin?out=1");
    }
  }

  const numberFormat = new Intl.NumberFormat("ru-RU", { maximumFractionDigits: 1 });
  const fmt = {
    number: (x) => (x === null || x === undefined || x === "" ? "—" : numberFormat.format(Number(x))),
    date: (iso) => {
      if (!iso) return "—";
      const [y, m, d] = String(iso).slice(0, 10).split("-");
      return `${d}.${m}.${y}`;
    },
    datetime: (iso) => {
      if (!iso) return "—";
      const at = new Date(iso);
      if (Number.isNaN(at.getTime())) return String(iso);
      return at.toLocaleString("ru-RU", { dateStyle: "short", timeStyle: "short" });
    },
  };

  function plain(value) {
    if (value === null || value === undefined) return "";
    if (value instanceof Node) return value.textContent || "";
    return String(value);
  }

  function compare(a, b) {
    const x = a === null || a === undefined ? "" : a;
    const y = b === null || b === undefined ? "" : b;
    if (typeof x === "number" && typeof y === "number") return x - y;
    return String(x).localeCompare(String(y), "ru", { numeric: true });
  }

  /* A table of `rows` (objects) under `container`: click a heading to sort, a search box
     over every cell, a select per key of `filters`, and «Выгрузить в XLSX» of the rows as
     shown. Returns {update(rows)}. */
  function table(container, spec) {
    const columns = spec.columns;
    let rows = spec.rows || [];
    let sortKey = spec.sort || null;
    let sortDir = 1;
    const chosen = {};
    const shown = (column, row) => {
      const value = row[column.key];
      return column.format ? column.format(value, row) : value === null || value === undefined ? "—" : value;
    };

    const controls = document.createElement("div");
    controls.className = "controls";
    let search = null;
    if (spec.search !== false) {
      search = document.createElement("input");
      search.type = "search";
      search.placeholder = "Поиск…";
      search.setAttribute("aria-label", `Поиск: ${spec.title || "таблица"}`);
      search.addEventListener("input", draw);
      controls.append(search);
    }
    const selects = {};
    for (const key of spec.filters || []) {
      const column = columns.find((c) => c.key === key);
      const select = document.createElement("select");
      select.setAttribute("aria-label", column ? column.title : key);
      select.dataset.key = key;
      select.addEventListener("change", () => {
        chosen[key] = select.value;
        draw();
      });
      selects[key] = select;
      controls.append(select);
    }
    const exportButton = document.createElement("button");
    exportButton.type = "button";
    exportButton.textContent = "Выгрузить в XLSX";
    exportButton.className = "export";
    exportButton.addEventListener("click", exportView);
    const count = document.createElement("span");
    count.className = "grid-count";
    controls.append(exportButton, count);

    const grid = document.createElement("table");
    grid.className = "grid";
    if (spec.title) grid.setAttribute("aria-label", spec.title);
    const head = grid.createTHead().insertRow();
    for (const column of columns) {
      const th = document.createElement("th");
      th.textContent = column.title;
      th.scope = "col";
      if (column.sortable !== false) {
        th.className = "sortable";
        th.addEventListener("click", () => {
          sortDir = sortKey === column.key ? -sortDir : 1;
          sortKey = column.key;
          draw();
        });
      }
      head.append(th);
    }
    const body = grid.createTBody();
    container.replaceChildren(controls, grid);

    function fillFilters() {
      for (const [key, select] of Object.entries(selects)) {
        const column = columns.find((c) => c.key === key) || { key, title: key };
        const values = [...new Set(rows.map((r) => plain(shown(column, r))))].sort(compare);
        const keep = chosen[key] || "";
        const all = document.createElement("option");
        all.value = "";
        all.textContent = `${column.title}: все`;
        select.replaceChildren(all, ...values.map((v) => {
          const option = document.createElement("option");
          option.value = v;
          option.textContent = v;
          return option;
        }));
        select.value = values.includes(keep) ? keep : "";
        chosen[key] = select.value;
      }
    }

    function view() {
      const needle = search ? search.value.trim().toLocaleLowerCase("ru") : "";
      let out = rows.filter((row) => {
        for (const [key, value] of Object.entries(chosen)) {
          if (!value) continue;
          const column = columns.find((c) => c.key === key) || { key };
          if (plain(shown(column, row)) !== value) return false;
        }
        if (!needle) return true;
        return columns.some((c) => plain(shown(c, row)).toLocaleLowerCase("ru").includes(needle));
      });
      if (sortKey) {
        const column = columns.find((c) => c.key === sortKey);
        out = [...out].sort((a, b) => sortDir * compare(
          column && column.sortValue ? column.sortValue(a) : a[sortKey],
          column && column.sortValue ? column.sortValue(b) : b[sortKey],
        ));
      }
      return out;
    }

    function draw() {
      const out = view();
      head.querySelectorAll("th").forEach((th, i) => {
        th.classList.remove("sorted-asc", "sorted-desc");
        if (columns[i].key === sortKey) th.classList.add(sortDir > 0 ? "sorted-asc" : "sorted-desc");
      });
      body.replaceChildren(...out.map((row) => {
        const tr = document.createElement("tr");
        for (const column of columns) {
          const td = document.createElement("td");
          const value = shown(column, row);
          if (value instanceof Node) td.append(value);
          else td.textContent = value;
          if (column.number) td.className = "number";
          tr.append(td);
        }
        return tr;
      }));
      if (!out.length) {
        const tr = body.insertRow();
        const td = tr.insertCell();
        td.colSpan = columns.length;
        td.className = "muted";
        td.textContent = rows.length ? "Ничего не найдено: измените поиск или фильтры." : spec.empty || "Пока пусто.";
      }
      count.textContent = `показано ${out.length} из ${rows.length}`;
    }

    async function exportView() {
      const out = view();
      try {
        const blob = await api("/ui/export.xlsx", {
          method: "POST",
          blob: true,
          body: {
            title: spec.title || document.title,
            columns: columns.map((c) => c.title),
            rows: out.map((row) => columns.map((c) => {
              const value = row[c.key];
              if (!c.format && (typeof value === "number" || value === null || value === undefined)) return value ?? null;
              return plain(shown(c, row));
            })),
          },
        });
        const link = document.createElement("a");
        link.href = URL.createObjectURL(blob);
        link.download = spec.filename || "выгрузка.xlsx";
        document.body.append(link);
        link.click();
        link.remove();
      } catch (err) {
        say(errorText(err), "error");
      }
    }

    fillFilters();
    draw();
    return {
      update(next) {
        rows = next || [];
        fillFilters();
        draw();
      },
      view,
    };
  }

  window.iomflow = { api, ApiError, errorText, say, session, signOut, table, fmt };
})();
