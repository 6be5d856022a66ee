/* A route on the methodist's workplace: its facts, steps and history in words, and the
   methodist's acts on it (approve; add, replace, remove a step with a reason; mark a step
   done). Every act is a command of the JSON API, signed by the session: the service refuses
   what the methodist may not do and the page says its Russian reason. */
"use strict";

(async function () {
  const body = document.body;
  const fmt = iomflow.fmt;
  const routeId = decodeURIComponent(location.pathname.split("/").pop());
  const base = `/v1/routes/${encodeURIComponent(routeId)}`;
  const form = document.getElementById("step-form");
  const choice = document.getElementById("step-choice");
  let route = null;
  let options = null;
  let mode = null; // add | replace | remove | complete
  let stepsTable = null;
  let historyTable = null;

  const el = (tag, text, cls) => {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  };

  function what(step) {
    if (step.kind === "program") return step.program_title ? `«${step.program_title}»` : "—";
    if (step.kind === "internship") return step.site_title || "—";
    if (step.kind === "mentoring") return step.mentor_name ? `наставник ${step.mentor_name}` : "—";
    if (step.kind === "community") return step.community_title || "—";
    if (step.follows) return `после шага ${String(step.follows).replace(/^\D+/, "")}`;
    return "—";
  }

  function label(step) {
    const detail = what(step);
    return detail === "—" ? step.kind_name : `${step.kind_name}: ${detail}`;
  }

  function number(step) {
    const n = String(step.step_id).replace(/^\D+/, "");
    return n || step.step_id;
  }

  function facts() {
    const pairs = [
      ["Педагог", route.teacher_name],
      ["Муниципалитет", route.municipality_name],
      ["Статус", route.status_reason ? `${route.status_name} (${route.status_reason})` : route.status_name],
      ["Методист", route.methodist_name || "не назначен"],
      ["Сроки", `${fmt.date(route.starts_on)} — ${fmt.date(route.ends_on)}`],
      ["Всего часов", fmt.number(route.total_hours)],
      [
        "Часы по годам",
        Object.entries(route.hours_by_period || {}).map(([y, h]) => `${y}: ${fmt.number(h)}`).join("; ") || "—",
      ],
      ["Составлен", fmt.datetime(route.created_at)],
    ];
    document.getElementById("facts").replaceChildren(
      ...pairs.flatMap(([t, d]) => [el("dt", t), el("dd", d || "—")]),
    );
    const approvals = document.getElementById("approvals");
    approvals.textContent = route.status === "drafted"
      ? (route.missing_names.length
          ? `Ждёт согласования: ${route.missing_names.join(", ")}.`
          : "Все согласования получены.")
      : `Маршрут ${route.status_name}: согласование не требуется.`;
    document.getElementById("approve").hidden = !(
      route.status === "drafted" && route.missing_approvals.includes("methodist")
    );
  }

  function drawSteps() {
    const columns = [
      { key: "step_id", title: "№", format: (_, s) => number(s), sortValue: (s) => Number(number(s)) || 0 },
      { key: "kind_name", title: "Вид" },
      { key: "competency_name", title: "Компетенция" },
      { key: "program_title", title: "Что именно", format: (_, s) => what(s), sortValue: (s) => what(s) },
      { key: "hours", title: "Часы", number: true, format: (v) => fmt.number(v) },
      { key: "starts_on", title: "Начало", format: (v) => fmt.date(v) },
      { key: "ends_on", title: "Окончание", format: (v) => fmt.date(v) },
      {
        key: "status_name",
        title: "Состояние",
        format: (v, s) => (s.done_on ? `${v} ${fmt.date(s.done_on)}` : s.removed_reason ? `${v}: ${s.removed_reason}` : v),
      },
      { key: "reason", title: "Почему этот шаг" },
    ];
    const spec = {
      title: "Шаги маршрута",
      filename: "шаги маршрута.xlsx",
      columns,
      rows: route.steps,
      filters: ["kind_name", "status_name"],
    };
    if (stepsTable) stepsTable.update(route.steps);
    else stepsTable = iomflow.table(document.getElementById("steps"), spec);
    const open = route.steps.filter((s) => s.status !== "done" && s.status !== "removed");
    const keep = choice.value;
    choice.replaceChildren(...open.map((s) => {
      const option = el("option", `${number(s)} — ${label(s)}`);
      option.value = s.step_id;
      return option;
    }));
    if (open.some((s) => s.step_id === keep)) choice.value = keep;
    const editable = ["drafted", "agreed", "active"].includes(route.status);
    for (const id of ["act-replace", "act-remove", "act-complete"]) {
      document.getElementById(id).disabled = !editable || !open.length;
    }
    document.getElementById("act-add").disabled = !editable;
  }

  function drawHistory() {
    const details = (h) => {
      const parts = [];
      if (h.step_id) parts.push(`шаг ${String(h.step_id).replace(/^\D+/, "")}`);
      if (h.new_step) parts.push(`новый шаг ${String(h.new_step).replace(/^\D+/, "")}`);
      if (h.reason) parts.push(h.reason);
      if (h.note) parts.push(h.note);
      return parts.join("; ") || "—";
    };
    const columns = [
      { key: "at", title: "Когда", format: (v) => fmt.datetime(v) },
      { key: "action_name", title: "Что сделано" },
      { key: "by_name", title: "Кто" },
      { key: "reason", title: "Подробности", format: (_, h) => details(h), sortValue: (h) => details(h) },
    ];
    const rows = [...route.history].reverse();
    if (historyTable) historyTable.update(rows);
    else {
      historyTable = iomflow.table(document.getElementById("history"), {
        title: "История маршрута",
        filename: "история маршрута.xlsx",
        columns,
        rows,
        filters: ["action_name", "by_name"],
      });
    }
  }

  function fillSelect(name, items, value, label) {
    const select = form.elements[name];
    const none = el("option", "—");
    none.value = "";
    select.replaceChildren(none, ...items.map((item) => {
      const option = el("option", label(item));
      option.value = value(item);
      return option;
    }));
  }

  function fillOptions() {
    fillSelect("competency", options.competencies, (c) => c.code, (c) => c.name);
    form.elements.competency.firstChild.remove();
    fillSelect("kind", options.kinds, (k) => k.code, (k) => k.name);
    form.elements.kind.firstChild.remove();
    fillSelect("program_id", options.programs, (p) => p.program_id,
      (p) => `${p.title} (${fmt.number(p.hours)} ч, ${p.format_name})`);
    fillSelect("site_id", options.sites, (s) => s.site_id, (s) => s.title);
    fillSelect("mentor_id", options.mentors, (m) => m.mentor_id, (m) => m.name);
    fillSelect("community_id", options.communities, (c) => c.community_id, (c) => `${c.title} (${c.level})`);
  }

  function showKindFields() {
    const kind = form.elements.kind.value;
    for (const label of form.querySelectorAll("label[data-for]")) {
      label.hidden = label.dataset.for !== kind;
    }
  }

  function open(next) {
    mode = next;
    const step = route.steps.find((s) => s.step_id === choice.value);
    const titles = {
      add: "Новый шаг",
      replace: `Замена шага ${step ? number(step) : ""}`,
      remove: `Удаление шага ${step ? number(step) : ""}`,
      complete: `Выполнение шага ${step ? number(step) : ""}`,
    };
    document.getElementById("form-title").textContent = titles[mode];
    document.getElementById("step-fields").hidden = !(mode === "add" || mode === "replace");
    document.getElementById("complete-fields").hidden = mode !== "complete";
    form.elements.reason.required = mode !== "complete";
    form.elements.reason.value = "";
    const source = mode === "replace" && step ? step : null;
    form.elements.competency.value = source ? source.competency : options.competencies[0].code;
    form.elements.kind.value = source ? source.kind : "consultation";
    form.elements.hours.value = source ? source.hours : 0;
    for (const name of ["program_id", "site_id", "mentor_id", "community_id", "starts_on", "ends_on"]) {
      form.elements[name].value = (source && source[name]) || "";
    }
    form.elements.on.value = "";
    showKindFields();
    document.getElementById("step-submit").textContent = {
      add: "Добавить шаг",
      replace: "Заменить шаг",
      remove: "Удалить шаг",
      complete: "Отметить выполненным",
    }[mode];
    form.hidden = false;
    form.elements.reason.focus();
  }

  function newStep() {
    const e = form.elements;
    const step = { competency: e.competency.value, kind: e.kind.value, hours: Number(e.hours.value || 0) };
    const ref = { program: "program_id", internship: "site_id", mentoring: "mentor_id", community: "community_id" }[step.kind];
    if (ref && e[ref].value) step[ref] = e[ref].value;
    if (e.starts_on.value) step.starts_on = e.starts_on.value;
    if (e.ends_on.value) step.ends_on = e.ends_on.value;
    return step;
  }

  /* One command; its answer (or its refusal, in Russian) is said on the page, and
     body[data-acts] counts the commands answered (a hook for tests). */
  async function act(path, payload, done) {
    try {
      await iomflow.api(`${base}${path}`, { method: "POST", body: payload });
      await load();
      iomflow.say(done, "ok");
      return true;
    } catch (err) {
      iomflow.say(iomflow.errorText(err), "error");
      return false;
    } finally {
      body.dataset.acts = String(Number(body.dataset.acts || 0) + 1);
    }
  }

  async function submit(event) {
    event.preventDefault();
    const step = encodeURIComponent(choice.value);
    const reason = form.elements.reason.value.trim();
    let ok = false;
    if (mode === "add") ok = await act("/steps", { reason, step: newStep() }, "Шаг добавлен.");
    else if (mode === "replace") ok = await act(`/steps/${step}/replace`, { reason, step: newStep() }, "Шаг заменён.");
    else if (mode === "remove") ok = await act(`/steps/${step}/remove`, { reason }, "Шаг удалён.");
    else if (mode === "complete") {
      const payload = {};
      if (form.elements.on.value) payload.on = form.elements.on.value;
      if (reason) payload.reason = reason;
      ok = await act(`/steps/${step}/complete`, payload, "Шаг отмечен выполненным.");
    }
    if (ok) form.hidden = true;
  }

  async function load() {
    route = await iomflow.api(`${base}/view`);
    document.getElementById("title").textContent = `Маршрут педагога ${route.teacher_name}`;
    const note = document.getElementById("names-note");
    note.textContent = route.names.note || "";
    note.hidden = route.names.shown || !route.names.note;
    const notMine = document.getElementById("not-mine");
    if (!route.mine) {
      notMine.textContent = route.methodist_id
        ? "Маршрут закреплён за другим методистом: изменять и согласовывать его может только он."
        : "Маршрут ждёт методиста в очереди: изменять его пока некому.";
    }
    notMine.hidden = route.mine;
    facts();
    drawSteps();
    drawHistory();
  }

  try {
    await iomflow.session();
    [options] = await Promise.all([iomflow.api(`${base}/options`), load()]);
    fillOptions();
    form.elements.kind.addEventListener("change", showKindFields);
    form.addEventListener("submit", submit);
    document.getElementById("step-cancel").addEventListener("click", () => { form.hidden = true; });
    document.getElementById("act-add").addEventListener("click", () => open("add"));
    document.getElementById("act-replace").addEventListener("click", () => open("replace"));
    document.getElementById("act-remove").addEventListener("click", () => open("remove"));
    document.getElementById("act-complete").addEventListener("click", () => open("complete"));
    document.getElementById("approve").addEventListener("click", () =>
      act("/approvals", { role: "methodist" }, "Маршрут согласован вами."));
    for (const id of ["summary-card", "steps-card", "history-card"]) document.getElementById(id).hidden = false;
    body.dataset.state = "ready";
  } catch (err) {
    iomflow.say(iomflow.errorText(err), "error");
    body.dataset.state = "error";
  } finally {
    document.getElementById("loading").hidden = true;
  }
})();
