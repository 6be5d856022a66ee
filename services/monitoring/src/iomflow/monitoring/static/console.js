/* The operator's console (console.py): streams and consumer groups, dead letters with
   replay and drop, open alerts with acknowledgement, a diagnosis's traces across services.
   Everything comes from this service's JSON API through iomflow.api (the session cookie);
   nothing from outside. Codes are never shown as words: a name in Russian, the code in a
   tooltip. Data a person copies (stream, group and event names, ids, span names) is shown
   in <code>. */
"use strict";

(function () {
  const { api, say, errorText, table, fmt } = window.iomflow;

  const SERVICES = {
    diagnostics: "диагностика",
    routes: "маршруты",
    registries: "реестры",
    monitoring: "мониторинг",
  };
  const REASONS = {
    invalid: "не прошла проверку контракта",
    max_deliveries: "исчерпаны попытки доставки",
    too_large: "слишком большая запись",
    rejected: "отвергнута сервисом",
  };
  const SEVERITY = { critical: "важно", warning: "внимание" };
  const KINDS = {
    kpi_off_path: "показатель не в графике",
    methodist_over_capacity: "методист перегружен",
    routes_waiting: "маршруты ждут методиста",
    diagnosis_without_route: "диагностика без маршрута",
    registry_stale: "реестр давно не подтверждался",
    dead_letters: "недоставленные записи",
  };
  const STATUS = { ERROR: "ошибка", OK: "успешно", UNSET: "успешно" };
  const SPAN_KINDS = {
    SERVER: "запрос",
    CLIENT: "вызов",
    PRODUCER: "отправка",
    CONSUMER: "получение",
    INTERNAL: "внутренний",
  };

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "title") node.title = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const code = (text) => el("code", {}, text === "" || text === null || text === undefined ? "—" : text);

  /** A word for a code, with the code in its tooltip; the code itself (as data) if unknown. */
  function named(words, value, otherwise) {
    if (value === "" || value === null || value === undefined) return "—";
    if (words[value]) return el("span", { title: value }, words[value]);
    return otherwise ? el("span", { title: value }, otherwise) : code(value);
  }
  const service = (name) => named(SERVICES, name);
  const reason = (name) => named(REASONS, name, "отказ по правилу сервиса");

  /** A sentence of the server with the ids and names it quotes (Latin letters) as data. */
  function sentence(text) {
    const out = el("span");
    // \w is ASCII here: a token of Latin letters, digits and the marks ids are made of
    const token = /[{\w][\w{}.:\-/]*[\w}]/g;
    let last = 0;
    for (const m of String(text).matchAll(token)) {
      if (!/[A-Za-z]/.test(m[0])) continue;
      out.append(text.slice(last, m.index), code(m[0]));
      last = m.index + m[0].length;
    }
    out.append(text.slice(last));
    return out;
  }

  function when(iso) {
    return iso ? fmt.datetime(iso) : "—";
  }

  function plural(n, one, few, many) {
    const m10 = n % 10;
    const m100 = n % 100;
    if (m10 === 1 && m100 !== 11) return one;
    if (m10 >= 2 && m10 <= 4 && !(m100 >= 12 && m100 <= 14)) return few;
    return many;
  }

  function state(id, value) {
    document.getElementById(id).dataset.state = value;
  }

  // --- streams -------------------------------------------------------------------------

  const streamsTable = { grid: null };

  async function loadStreams() {
    state("streams", "loading");
    const answer = await api("/v1/ops/streams");
    const rows = answer.streams;
    const columns = [
      {
        key: "stream",
        title: "Поток",
        format: (v, r) => el("code", { dataset: { stream: v, group: r.group } }, v),
      },
      {
        key: "group",
        title: "Группа",
        format: (v) => (v ? service(v) : el("span", { class: "muted" }, "никто не читает")),
      },
      { key: "length", title: "Записей", number: true, format: fmt.number },
      {
        key: "lag",
        title: "Отставание",
        number: true,
        format: (v, r) => (r.lag_exact ? fmt.number(v) : `более ${fmt.number(v)}`),
      },
      { key: "pending", title: "В обработке", number: true, format: fmt.number },
      { key: "consumers", title: "Потребителей", number: true, format: fmt.number },
      {
        key: "dlq_length",
        title: "Недоставленных",
        number: true,
        format: (v) => (v ? el("b", { class: "bad" }, fmt.number(v)) : fmt.number(v)),
      },
    ];
    if (!streamsTable.grid) {
      streamsTable.grid = table(document.getElementById("streams-table"), {
        columns,
        rows,
        title: "Потоки и группы потребителей",
        filename: "потоки.xlsx",
        filters: ["stream"],
      });
    } else streamsTable.grid.update(rows);
    state("streams", "ready");
  }

  // --- dead letters ----------------------------------------------------------------------

  const lettersTable = { grid: null };

  async function loadLetters() {
    state("letters", "loading");
    const answer = await api("/v1/ops/dead-letters");
    const rows = [];
    const reasons = document.getElementById("reasons");
    reasons.replaceChildren();
    let total = 0;
    for (const dlq of answer.dlqs) {
      total += dlq.count;
      if (!dlq.count) continue;
      const by = Object.entries(dlq.reasons).sort((a, b) => b[1] - a[1]);
      reasons.append(
        el(
          "li",
          { dataset: { dlq: dlq.dlq } },
          code(dlq.stream),
          ": ",
          ...by.flatMap(([why, n], i) => [i ? ", " : "", reason(why), ` — ${fmt.number(n)}`]),
          dlq.count > dlq.scanned ? ` (по первым ${fmt.number(dlq.scanned)})` : "",
        ),
      );
      rows.push(...dlq.entries.map((e) => ({ ...e, original: dlq.stream })));
    }
    document.getElementById("letters-note").textContent = total
      ? `Недоставленных записей: ${fmt.number(total)}. Вернуть запись в поток стоит, когда причина устранена; иначе она снова окажется здесь.`
      : "Недоставленных записей нет.";
    const columns = [
      { key: "at", title: "Когда", format: when },
      { key: "original", title: "Поток", format: (v) => code(v) },
      { key: "type", title: "Событие", format: (v) => code(v) },
      { key: "subject", title: "Субъект", format: (v) => code(v) },
      { key: "group", title: "Группа", format: service },
      { key: "reason", title: "Причина", format: reason },
      { key: "deliveries", title: "Попыток", number: true, format: fmt.number },
      { key: "id", title: "Действия", sortable: false, format: (_, row) => actions(row) },
    ];
    if (!lettersTable.grid) {
      lettersTable.grid = table(document.getElementById("letters-table"), {
        columns,
        rows,
        title: "Недоставленные записи",
        filename: "недоставленные.xlsx",
        filters: ["original", "reason"],
        empty: "Недоставленных записей нет.",
      });
    } else lettersTable.grid.update(rows);
    state("letters", "ready");
  }

  function actions(row) {
    const data = { letter: row.id, stream: row.original };
    return el(
      "span",
      { class: "actions", dataset: data },
      el("button", { type: "button", class: "show", dataset: data, onclick: () => showLetter(row) }, "Подробно"),
      " ",
      el("button", { type: "button", class: "replay primary", dataset: data, onclick: () => replay(row) }, "Вернуть в поток"),
      " ",
      el("button", { type: "button", class: "drop danger", dataset: data, onclick: () => drop(row) }, "Удалить"),
    );
  }

  const where = (row) => `?stream=${encodeURIComponent(row.original)}`;

  async function showLetter(row) {
    try {
      const letter = await api(`/v1/ops/dead-letters/${encodeURIComponent(row.id)}${where(row)}`);
      const box = document.getElementById("letter");
      document.getElementById("letter-id").textContent = letter.id;
      const fields = document.getElementById("letter-fields");
      fields.replaceChildren(
        ...[
          ["Очередь", code(letter.dlq)],
          ["Исходная запись", code(letter.entry_id)],
          ["Идентификатор события", code(letter.event_id)],
          ["Группа", service(letter.group)],
          ["Причина", reason(letter.reason)],
          ["Попыток доставки", fmt.number(letter.deliveries)],
          ["Когда", when(letter.at)],
        ].flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]),
      );
      const error = typeof letter.error === "string" ? letter.error : JSON.stringify(letter.error, null, 2);
      const data = typeof letter.data === "string" ? letter.data : JSON.stringify(letter.data, null, 2);
      document.getElementById("letter-error").replaceChildren(
        el("b", {}, "Ошибка"), "\n", code(error || "—"), "\n\n", el("b", {}, "Данные события"), "\n", code(data || "—"),
      );
      box.hidden = false;
      box.scrollIntoView({ block: "nearest" });
    } catch (err) {
      say(errorText(err), "error");
    }
  }

  async function replay(row) {
    try {
      const done = await api(`/v1/ops/dead-letters/${encodeURIComponent(row.id)}/replay${where(row)}`, {
        method: "POST",
      });
      const groups = done.groups.length
        ? ` Её снова получат группы: ${done.groups.map((g) => SERVICES[g] || "другая").join(", ")}; кто уже применил событие, отбросит повтор.`
        : "";
      say(`Запись возвращена в свой поток.${groups}`, "ok");
    } catch (err) {
      say(errorText(err), "error");
    }
    await refresh();
  }

  async function drop(row) {
    if (!window.confirm("Удалить запись без возврата в поток? Вернуть её будет нельзя.")) return;
    try {
      await api(`/v1/ops/dead-letters/${encodeURIComponent(row.id)}${where(row)}`, { method: "DELETE" });
      say("Запись удалена без возврата в поток.", "ok");
    } catch (err) {
      say(errorText(err), "error");
    }
    await refresh();
  }

  // --- alerts ----------------------------------------------------------------------------

  const alertsTable = { grid: null };

  async function loadAlerts() {
    state("alerts", "loading");
    const rows = [];
    for (;;) {  // every open alert: the list is paged ({items, total, offset, limit})
      const page = await api(`/v1/alerts?status=open&offset=${rows.length}&limit=1000`);
      rows.push(...page.items);
      if (!page.items.length || rows.length >= page.total) break;
    }
    const seen = rows.filter((a) => a.acknowledged_at).length;
    document.getElementById("alerts-note").textContent = rows.length
      ? `Открытых оповещений: ${fmt.number(rows.length)}, ${plural(seen, "просмотрено", "просмотрены", "просмотрено")}: ${fmt.number(seen)}.`
      : "Открытых оповещений нет.";
    const columns = [
      { key: "severity", title: "Важность", format: (v) => named(SEVERITY, v) },
      { key: "kind", title: "Вид", format: (v) => named(KINDS, v, "другое") },
      { key: "message", title: "Сообщение", format: sentence },
      { key: "raised_at", title: "С", format: when },
      {
        key: "acknowledged_at",
        title: "Просмотрено",
        format: (v, row) => (v ? `${row.acknowledged_by}, ${when(v)}` : acknowledgeButton(row)),
      },
    ];
    if (!alertsTable.grid) {
      alertsTable.grid = table(document.getElementById("alerts-table"), {
        columns,
        rows,
        title: "Открытые оповещения",
        filename: "оповещения.xlsx",
        filters: ["severity", "kind"],
        empty: "Открытых оповещений нет.",
      });
    } else alertsTable.grid.update(rows);
    state("alerts", "ready");
  }

  function acknowledgeButton(row) {
    return el(
      "button",
      {
        type: "button",
        class: "acknowledge",
        dataset: { alert: row.alert_id },
        onclick: async () => {
          try {
            await api(`/v1/ops/alerts/${encodeURIComponent(row.alert_id)}/acknowledge`, { method: "POST" });
            say("Оповещение отмечено как просмотренное.", "ok");
          } catch (err) {
            say(errorText(err), "error");
          }
          await loadAlerts().catch(failed);
        },
      },
      "Отметить просмотренным",
    );
  }

  // --- traces ----------------------------------------------------------------------------

  async function findTraces(ident, sql) {
    state("traces", "loading");
    const list = document.getElementById("traces-list");
    const note = document.getElementById("traces-note");
    list.replaceChildren();
    note.textContent = "Ищем…";
    let answer;
    try {
      answer = await api(`/v1/ops/traces?id=${encodeURIComponent(ident)}${sql ? "&sql=true" : ""}`);
    } catch (err) {
      note.textContent = "";
      say(errorText(err), "error");
      state("traces", "error");
      return;
    }
    const n = answer.traces.length;
    note.textContent = n
      ? `Найдено ${fmt.number(n)} ${plural(n, "трасса", "трассы", "трасс")} (последние — ниже).`
      : "Трасс с этим идентификатором не найдено: ищется по идентификатору трассы и значениям атрибутов спанов; трасса могла не попасть в выборку.";
    for (const trace of answer.traces) list.append(traceView(trace));
    state("traces", "ready");
  }

  function traceView(trace) {
    const head = el(
      "p",
      { class: "trace-head" },
      "Трасса ",
      code(trace.trace_id),
      `: начало ${when(trace.started_at)}, длительность ${fmt.number(trace.duration_ms)} мс, сервисы: `,
      ...trace.services.flatMap((s, i) => [i ? ", " : "", service(s)]),
      trace.errors ? el("b", { class: "bad" }, `; спанов с ошибкой: ${fmt.number(trace.errors)}`) : "",
    );
    const grid = el("table", { class: "grid spans" });
    const caption = grid.createTHead().insertRow();
    for (const title of ["От начала, мс", "Сервис", "Спан", "Вид", "Длительность, мс", "Итог", "Событие", "Диагностика"]) {
      caption.append(el("th", { scope: "col" }, title));
    }
    const body = grid.createTBody();
    for (const span of trace.spans) {
      const tr = body.insertRow();
      tr.dataset.span = span.span_id;
      tr.dataset.service = span.service || "";
      if (span.status === "ERROR") tr.className = "error";
      const cells = [
        fmt.number(span.offset_ms),
        service(span.service),
        el("span", { class: "span-name" }, code(span.name)),
        named(SPAN_KINDS, span.kind),
        fmt.number(span.duration_ms),
        named(STATUS, span.status),
        span.event_type ? code(span.event_type) : "—",
        span.diagnosis_id ? code(span.diagnosis_id) : "—",
      ];
      cells.forEach((value, i) => {
        const td = tr.insertCell();
        if (i === 0 || i === 4) td.className = "number";
        if (i === 2) td.classList.add(`depth-${Math.min(span.depth, 8)}`);
        td.append(value instanceof Node ? value : String(value));
      });
    }
    return el("div", { class: "trace", dataset: { trace: trace.trace_id } }, head, grid);
  }

  // --- the page --------------------------------------------------------------------------

  function failed(err) {
    say(errorText(err), "error");
  }

  async function refresh() {
    const results = await Promise.allSettled([loadStreams(), loadLetters(), loadAlerts()]);
    for (const r of results) if (r.status === "rejected") failed(r.reason);
  }

  async function start() {
    await window.iomflow.session();
    document.getElementById("refresh").addEventListener("click", () => refresh());
    document.getElementById("trace-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const ident = document.getElementById("trace-id").value.trim();
      const params = new URLSearchParams(location.search);
      params.set("trace", ident);
      history.replaceState(null, "", `${location.pathname}?${params}`);
      findTraces(ident, document.getElementById("trace-sql").checked);
    });
    await refresh();
    const asked = new URLSearchParams(location.search).get("trace");
    if (asked) {
      document.getElementById("trace-id").value = asked;
      await findTraces(asked, false);
    }
    document.body.dataset.state = "ready";
  }

  start().catch((err) => {
    failed(err);
    document.body.dataset.state = "error";
  });
})();
