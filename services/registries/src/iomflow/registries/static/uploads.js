/* The registrar's uploads page, by hand: no framework, no build step, nothing from outside.
 *
 * After the pages' shared script (window.iomflow: session, api, table, say), it uses the
 * service's JSON API:
 *   v1/registers                         the registers, their Russian titles and columns
 *   POST v1/registers/{r}/imports        a dry run of the chosen file, then the import the
 *                                        registrar confirms (the same file sent again)
 *   v1/imports/{id}                      progress while it runs; then the summary, the
 *                                        preview (rows new, changed, unchanged) and the
 *                                        row errors with their row and column letters
 * and links to v1/registers/{r}/template.xlsx, v1/imports/{id}/marked.xlsx (the
 * registrar's own file with the bad cells marked) and v1/imports/{id}/errors.xlsx.
 *
 * Text from the data is always set as text. Values that come from the registrar's own
 * file (codes, cell values, the file's name) are marked [data-own]: they are shown as
 * written. The chosen register lives in the address (?register=...).
 */
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const POLL_MS = 400;
  const PHASES = { "в очереди": "в очереди", "чтение файла": "чтение файла", "проверка": "проверка строк", "запись": "запись в реестр" };
  const PLURAL = new Intl.PluralRules("ru-RU");
  const forms = (n, one, few, many) => ({ one, few, many, other: few })[PLURAL.select(n)];
  const number = (n) => iomflow.fmt.number(n);

  let registers = [];
  let chosen = null; // the register's entry of v1/registers
  let file = null; // the File checked in the dry run, sent again on confirm
  let dry = null; // the dry run's job

  function state(name) {
    document.body.dataset.state = name;
  }

  function own(text) {
    const span = document.createElement("span");
    span.className = "own";
    span.dataset.own = "";
    span.textContent = text === null || text === undefined ? "" : String(text);
    return span;
  }

  function show(id, visible) {
    $(id).hidden = !visible;
  }

  // --- the register -----------------------------------------------------------------------

  function chooseRegister(name) {
    chosen = registers.find((r) => r.register === name) || registers[0];
    $("register").value = chosen.register;
    const url = new URL(location.href);
    url.searchParams.set("register", chosen.register);
    history.replaceState(null, "", url);
    $("records").textContent = `в реестре ${number(chosen.records)} ${forms(chosen.records, "запись", "записи", "записей")}`;
    $("template").href = `/v1/registers/${encodeURIComponent(chosen.register)}/template.xlsx`;
    $("template").setAttribute("download", `Шаблон — ${chosen.title}.xlsx`);
    const body = $("columns").tBodies[0];
    body.replaceChildren(...chosen.columns.map((column) => {
      const tr = document.createElement("tr");
      const hint = column.hint || "";
      for (const text of [column.title, column.required ? "да" : "нет", column.personal ? `${hint} (персональные данные)` : hint]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    }));
    reset();
  }

  // --- a job ------------------------------------------------------------------------------

  async function submit(mode, confirm) {
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("mode", mode);
    form.append("confirm", confirm ? "true" : "false");
    const started = await iomflow.api(`/v1/registers/${encodeURIComponent(chosen.register)}/imports`, { method: "POST", form });
    return follow(started.import_id, mode === "dry_run" ? "Проверка файла" : "Загрузка в реестр");
  }

  async function follow(id, title) {
    $("progress-title").textContent = title;
    show("progress", true);
    for (;;) {
      const job = await iomflow.api(`/v1/imports/${encodeURIComponent(id)}`);
      if (job.status !== "queued" && job.status !== "running") {
        show("progress", false);
        return job;
      }
      const p = job.progress || {};
      const bar = $("progress-bar");
      if (p.total) {
        bar.max = p.total;
        bar.value = p.done || 0;
        $("progress-text").textContent = `${PHASES[p.phase] || p.phase}: ${number(p.done || 0)} из ${number(p.total)} ${forms(p.total, "строки", "строк", "строк")}`;
      } else {
        bar.removeAttribute("value");
        $("progress-text").textContent = PHASES[p.phase] || p.phase || "в очереди";
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  function failed(job) {
    const message = (job.summary && job.summary.message) || "Импорт не удался.";
    iomflow.say(`Файл не прочитан: ${message}`, "error");
    state("error");
  }

  // --- the dry run's preview --------------------------------------------------------------

  function where(e) {
    if (e.row === 1) return e.letter ? `строка 1 (заголовки), столбец ${e.letter} «${e.column}»` : "строка 1 (заголовки)";
    return e.letter ? `строка ${e.row}, столбец ${e.letter} «${e.column}»` : `строка ${e.row}, «${e.column}»`;
  }

  function counts(summary) {
    const items = [
      ["created", "Новых записей", summary.created],
      ["updated", "Изменённых", summary.updated],
      ["unchanged", "Без изменений", summary.unchanged],
      ["error_rows", "Строк с ошибками", summary.error_rows],
    ];
    $("counts").replaceChildren(...items.flatMap(([key, title, value]) => {
      const dt = document.createElement("dt");
      dt.textContent = title;
      const dd = document.createElement("dd");
      dd.dataset.count = key;
      dd.textContent = number(value);
      if (key === "error_rows" && value) dd.className = "bad";
      return [dt, dd];
    }));
  }

  function errorsTable(job) {
    const box = $("row-errors");
    const rows = (job.errors || []).map((e) => ({ ...e, where: where(e) }));
    const table = iomflow.table(box, {
      title: "Ошибки в файле",
      filename: "ошибки.xlsx",
      columns: [
        { key: "where", title: "Где", sortValue: (r) => r.row * 100000 + letterIndex(r.letter) },
        { key: "value", title: "Значение в ячейке", format: (v) => own(v || "") },
        { key: "reason", title: "Ошибка", sortable: false },
      ],
      rows,
      search: rows.length > 10,
    });
    // Hooks for the rows as the sheet numbers them, after every redraw (sort, search).
    const mark = () => {
      const shown = table.view();
      box.querySelectorAll("tbody tr").forEach((tr, i) => {
        if (shown[i]) {
          tr.dataset.row = shown[i].row;
          tr.dataset.letter = shown[i].letter;
        }
      });
    };
    new MutationObserver(mark).observe(box.querySelector("tbody"), { childList: true });
    mark();
  }

  function letterIndex(letter) {
    let n = 0;
    for (const ch of letter || "") n = n * 26 + (ch.charCodeAt(0) - 64);
    return n;
  }

  function changeText(row) {
    const parts = (row.changes || []).map((c) =>
      c.old === null && c.new === null ? `${c.title}: изменится` : `${c.title}: ${c.old || "—"} → ${c.new || "—"}`);
    return parts.join("; ");
  }

  function changesTables(job) {
    const preview = job.preview || { created: [], updated: [], unchanged: [] };
    const summary = job.summary || {};
    const box = $("changes");
    box.replaceChildren();
    const groups = [
      ["created", "Будут добавлены", summary.created, false],
      ["updated", "Будут изменены", summary.updated, true],
      ["unchanged", "Останутся без изменений", summary.unchanged, false],
    ];
    for (const [key, title, total, withChanges] of groups) {
      const rows = preview[key] || [];
      if (!total) continue;
      const details = document.createElement("details");
      details.id = `changes-${key}`;
      details.open = key !== "unchanged";
      const head = document.createElement("summary");
      const listed = rows.length < total ? `, показаны первые ${number(rows.length)}` : "";
      head.textContent = `${title}: ${number(total)} ${forms(total, "запись", "записи", "записей")}${listed}`;
      const holder = document.createElement("div");
      details.append(head, holder);
      box.append(details);
      const columns = [
        { key: "row", title: "Строка", number: true },
        { key: "record_id", title: "Код", format: (v) => own(v) },
      ];
      // Persons' records have no name outside their personal data: no column for it.
      if (rows.some((r) => r.label)) columns.push({ key: "label", title: "Наименование", format: (v) => (v ? own(v) : "—") });
      if (withChanges) columns.push({ key: "changes", title: "Что изменится", sortable: false, format: (v, r) => changeText(r) });
      iomflow.table(holder, { title, filename: `${title}.xlsx`, columns, rows, search: rows.length > 10 });
    }
  }

  function preview(job) {
    dry = job;
    const summary = job.summary || {};
    const errors = job.errors || [];
    $("preview").dataset.import = job.import_id;
    $("preview-message").textContent = `Файл `;
    $("preview-message").append(own(file.name), `: ${number(summary.total_rows || 0)} ${forms(summary.total_rows || 0, "строка", "строки", "строк")} с данными. Пробная проверка: в реестр ничего не записано.`);
    counts(summary);
    show("errors-box", errors.length > 0);
    if (errors.length) {
      errorsTable(job);
      $("marked").hidden = !job.marked_href;
      if (job.marked_href) $("marked").href = job.marked_href;
      $("errors-list").href = `/v1/imports/${encodeURIComponent(job.import_id)}/errors.xlsx`;
    }
    changesTables(job);
    const header = errors.some((e) => e.row === 1);
    const valid = summary.valid_rows || 0;
    const confirm = $("confirm");
    confirm.hidden = header || valid === 0;
    if (header) {
      $("decide-hint").textContent = "Исправьте заголовки столбцов (сравните с шаблоном реестра) и проверьте файл снова.";
    } else if (valid === 0) {
      $("decide-hint").textContent = "В файле нет ни одной верной строки: исправьте ошибки и проверьте файл снова.";
    } else if (errors.length) {
      confirm.textContent = `Загрузить только верные строки (${number(valid)})`;
      $("decide-hint").textContent = "Строки с ошибками не будут загружены. Можно исправить их в файле и проверить его снова.";
    } else {
      confirm.textContent = `Загрузить (${number(valid)} ${forms(valid, "строка", "строки", "строк")})`;
      $("decide-hint").textContent = "Ошибок нет. После загрузки изменения сразу увидят остальные службы.";
    }
    show("preview", true);
    show("upload", false);
    state("previewed");
  }

  // --- the import -------------------------------------------------------------------------

  async function confirmImport() {
    const mode = (dry.errors || []).length ? "valid_rows" : "all_or_nothing";
    state("importing");
    show("preview", false);
    let job;
    try {
      job = await submit(mode, $("verify").checked);
    } catch (err) {
      iomflow.say(iomflow.errorText(err), "error");
      show("preview", true);
      state("previewed");
      return;
    }
    if (job.status === "failed") return failed(job);
    const summary = job.summary || {};
    $("result").dataset.status = summary.applied ? "applied" : "not_applied";
    $("result").dataset.import = job.import_id;
    $("result-message").textContent = summary.applied
      ? `Загружено в реестр «${chosen.title}»: добавлено ${number(summary.created)}, изменено ${number(summary.updated)}, без изменений ${number(summary.unchanged)}` +
        (summary.verified ? `, отмечено проверенными ${number(summary.verified)}` : "") +
        (summary.error_rows ? `; не загружено строк с ошибками: ${number(summary.error_rows)}.` : ".")
      : summary.message || "Ничего не загружено.";
    $("result-marked").hidden = !job.marked_href;
    if (job.marked_href) $("result-marked").href = job.marked_href;
    show("result", true);
    iomflow.say(summary.applied ? "Загрузка завершена." : "Ничего не загружено.", summary.applied ? "ok" : "error");
    state("done");
    await refreshCounts();
  }

  async function refreshCounts() {
    try {
      registers = await iomflow.api("/v1/registers");
      const current = registers.find((r) => r.register === chosen.register);
      if (current) {
        chosen = current;
        $("records").textContent = `в реестре ${number(current.records)} ${forms(current.records, "запись", "записи", "записей")}`;
      }
    } catch (err) {
      iomflow.say(iomflow.errorText(err), "error");
    }
  }

  function reset() {
    dry = null;
    const said = document.getElementById("iomflow-say");
    if (said) said.replaceChildren();
    show("preview", false);
    show("result", false);
    show("progress", false);
    show("upload", true);
    $("upload-form").reset();
    state("ready");
  }

  async function check(event) {
    event.preventDefault();
    const picked = $("file").files[0];
    if (!picked) {
      iomflow.say("Выберите файл таблицы (.xlsx или .csv).", "error");
      return;
    }
    file = picked;
    state("checking");
    show("upload", false);
    try {
      const job = await submit("dry_run", false);
      if (job.status === "failed") {
        show("upload", true);
        return failed(job);
      }
      iomflow.say(job.errors && job.errors.length ? "Проверка закончена: в файле есть ошибки." : "Проверка закончена: ошибок нет.", job.errors && job.errors.length ? "error" : "ok");
      preview(job);
    } catch (err) {
      show("progress", false);
      show("upload", true);
      iomflow.say(iomflow.errorText(err), "error");
      state("error");
    }
  }

  async function start() {
    const who = await iomflow.session();
    registers = await iomflow.api("/v1/registers");
    show("loading", false);
    const roles = who.roles || [];
    if (!roles.includes("registrar") && !roles.includes("*")) {
      iomflow.say("Загружать реестры может только регистратор: войдите с ключом регистратора.", "error");
      state("error");
      return;
    }
    $("register").replaceChildren(...registers.map((r) => {
      const option = document.createElement("option");
      option.value = r.register;
      option.textContent = r.title;
      return option;
    }));
    $("register").addEventListener("change", () => chooseRegister($("register").value));
    $("upload-form").addEventListener("submit", check);
    $("confirm").addEventListener("click", confirmImport);
    $("again").addEventListener("click", reset);
    $("next").addEventListener("click", reset);
    show("choose", true);
    chooseRegister(new URL(location.href).searchParams.get("register"));
  }

  document.addEventListener("DOMContentLoaded", () => {
    start().catch((err) => {
      show("loading", false);
      iomflow.say(iomflow.errorText(err), "error");
      state("error");
    });
  });
})();
