/* The methodist's workplace: my routes, the drafts awaiting my approval, the queue. Reads
   /v1/workplace (names or pseudonyms, as the service decides) and draws three tables with
   the pages' foundation (sort, search, filters, XLSX of what is shown). The queue is a page
   (items, total): its first routes, and how many wait in all. */
"use strict";

(async function () {
  const body = document.body;
  const fmt = iomflow.fmt;

  function routeLink(row) {
    const link = document.createElement("a");
    link.href = `/workplace/routes/${encodeURIComponent(row.route_id)}`;
    link.dataset.route = row.route_id;
    link.textContent = row.teacher_name || row.teacher_id;
    if (!row.teacher_name || row.teacher_name === row.teacher_id) link.className = "pseudonym";
    return link;
  }

  const columns = (withMissing) => [
    { key: "teacher_name", title: "Педагог", format: (_, row) => routeLink(row) },
    { key: "municipality_name", title: "Муниципалитет" },
    { key: "status_name", title: "Статус" },
    {
      key: "competencies",
      title: "Компетенции",
      format: (v) => (v && v.length ? v.join("; ") : "—"),
      sortValue: (row) => (row.competencies || []).join("; "),
    },
    {
      key: "steps_done",
      title: "Шаги: выполнено из",
      number: true,
      format: (_, row) => `${row.steps_done} из ${row.steps_total}`,
      sortValue: (row) => row.steps_done,
    },
    { key: "total_hours", title: "Часы", number: true, format: (v) => fmt.number(v) },
    { key: "starts_on", title: "Начало", format: (v) => fmt.date(v) },
    { key: "ends_on", title: "Окончание", format: (v) => fmt.date(v) },
    ...(withMissing
      ? [{
          key: "missing_names",
          title: "Ждёт согласования",
          format: (v) => (v && v.length ? v.join(", ") : "—"),
          sortValue: (row) => (row.missing_names || []).join(", "),
        }]
      : []),
  ];

  try {
    await iomflow.session();
    const data = await iomflow.api("/v1/workplace");
    document.getElementById("who-am-i").textContent = `Методист ${data.methodist_id}`;
    const note = document.getElementById("names-note");
    if (!data.names.shown && data.names.note) {
      note.textContent = data.names.note;
      note.hidden = false;
    }
    if (data.methodist) {
      const load = document.getElementById("load");
      const pairs = [
        ["Открытых маршрутов", fmt.number(data.methodist.load)],
        ["Предельная нагрузка", fmt.number(data.methodist.capacity)],
        ["Свободных мест", fmt.number(data.methodist.free)],
      ];
      load.replaceChildren(...pairs.flatMap(([t, d]) => {
        const dt = document.createElement("dt");
        dt.textContent = t;
        const dd = document.createElement("dd");
        dd.textContent = d;
        return [dt, dd];
      }));
      load.hidden = false;
    }
    iomflow.table(document.getElementById("awaiting"), {
      title: "Ждут моего согласования",
      filename: "ждут согласования.xlsx",
      columns: columns(true),
      rows: data.awaiting,
      filters: ["municipality_name"],
      empty: "Маршрутов, ждущих вашего согласования, нет.",
    });
    iomflow.table(document.getElementById("routes"), {
      title: "Мои педагоги и их маршруты",
      filename: "мои педагоги.xlsx",
      columns: columns(true),
      rows: data.routes,
      filters: ["status_name", "municipality_name"],
      empty: "За вами пока не закреплено ни одного маршрута.",
    });
    iomflow.table(document.getElementById("queue"), {
      title: "Очередь маршрутов без методиста",
      filename: "очередь.xlsx",
      columns: columns(false),
      rows: data.queue.items,
      filters: ["status_name", "municipality_name"],
      empty: "Очередь пуста: у каждого маршрута есть методист.",
    });
    if (data.queue.total > data.queue.items.length) {
      const more = document.getElementById("queue-more");
      more.textContent = `Показаны первые ${fmt.number(data.queue.items.length)} из ` +
        `${fmt.number(data.queue.total)} маршрутов очереди (самые давние).`;
      more.hidden = false;
    }
    body.dataset.state = "ready";
  } catch (err) {
    iomflow.say(iomflow.errorText(err), "error");
    body.dataset.state = "error";
  } finally {
    document.getElementById("loading").hidden = true;
  }
})();
