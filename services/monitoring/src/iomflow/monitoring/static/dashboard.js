/* The monitoring dashboard, by hand: no framework, no build step, nothing from outside.
 *
 * It reads the service's JSON API (relative URLs, so it works behind a path prefix):
 *   v1/kpis?as_of=                      the region and every municipality
 *   v1/municipalities/{id}/kpis?as_of=  a municipality and its organisations
 *   v1/kpis/{code}/series?months=&municipality_id=&as_of=   monthly values for a chart
 *   v1/catalogue                        the source of the KPIs (for the header)
 *   v1/reports                          the reports there are (the analytics workbook's
 *                                       address, when the service is told it)
 *   v1/tracked                          the rows of Appendix 1 that are measures (the
 *                                       region's panel «Меры приложения 1»)
 * and draws the tables and the charts (inline SVG) from them. Text from the data is always
 * set as text, never parsed as HTML. A KPI row's optional ``period`` ({label, passed}) and
 * ``at_deadline`` ({on, value, met}) are shown when the API sends them.
 *
 * Where the user is lives in the address: #/ (region), #/m/<municipality>,
 * #/m/<municipality>/o/<organisation>, each with ?as_of=YYYY-MM-DD&kpi=<code>; so the back
 * button and links work. Test hooks: body[data-state=loading|ready|error][data-view]
 * [data-as-of], tr[data-kpi] > td[data-value], a[data-municipality], a[data-organization],
 * svg#series-chart[data-state][data-kpi], #tracked[data-state] > li[data-tracked][data-status].
 */
"use strict";

(() => {
  const STATUS = {
    met: "достигнут",
    on_track: "в графике",
    at_risk: "под угрозой",
    missed: "не достигнут",
    no_data: "нет данных",
    not_judged: "без цели на этом уровне",
  };
  const SUMMARY = [
    ["met", "Достигнуто"],
    ["on_track", "В графике"],
    ["at_risk", "Под угрозой"],
    ["missed", "Не достигнуто"],
    ["no_data", "Нет данных"],
    ["not_judged", "Без цели на этом уровне"],
  ];
  const SEVERITY = { critical: "важно", warning: "внимание" };
  const TRACKED_NOTE = "Строки приложения 1 без числового показателя: статус — по сведениям, внесённым оператором.";
  const NOT_RECORDED = "сведения не внесены";
  const COMPARISON = { ">=": "не менее", "<=": "не более" };
  const ACCUMULATION = {
    cumulative: "накопительным итогом",
    yearly: "с 1 января текущего года",
    monthly: "с 1-го числа текущего месяца",
    held_in_year: "действовавшие в текущем году",
    current: "на дату",
  };
  /** Values a KPI is broken down by (expert_involvement: the kinds of expert roles). */
  const BREAKDOWN = {
    attestation: "аттестация педагогических работников",
    program_review: "экспертиза программ ДПО",
    contest_jury: "жюри профессиональных конкурсов",
    practice_review: "экспертиза практик",
    diagnostics: "эксперт оценочных процедур",
    olympiad: "предметные комиссии, олимпиады",
    other: "иное",
  };
  const COUNTS = [
    ["teachers", "Педагогов"],
    ["diagnosed", "Прошли диагностику"],
    ["with_route", "С ИОМ"],
    ["supported", "С поддержкой методиста"],
  ];
  const MONTHS = ["янв", "фев", "мар", "апр", "май", "июн", "июл", "авг", "сен", "окт", "ноя", "дек"];
  const SERIES_MONTHS = 12;
  const CACHE_MS = 30000;
  const NUMBER = new Intl.NumberFormat("ru-RU", { maximumFractionDigits: 1 });
  const PLURAL = new Intl.PluralRules("ru-RU");
  /** Units that are words, by the plural category of the number before them. */
  const UNIT_FORMS = { команд: { one: "команда", few: "команды", many: "команд", other: "команды" } };
  const SVG_NS = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);

  // --- formatting ------------------------------------------------------------------------

  const number = (v) => (v === null || v === undefined ? "—" : NUMBER.format(v));
  const unitFor = (v, unit) => (UNIT_FORMS[unit] ? UNIT_FORMS[unit][PLURAL.select(v)] : unit);
  const withUnit = (v, unit) => (v === null || v === undefined ? "—" : `${number(v)}\u00a0${unitFor(v, unit)}`);

  function ruDate(iso) {
    if (!iso) return "";
    const [y, m, d] = iso.split("-");
    return `${d}.${m}.${y}`;
  }

  function targetText(kpi, value) {
    if (kpi.comparison === "growth") return "рост к прошлому году";
    if (kpi.comparison === "decline") return "снижение к прошлому году";
    return `${COMPARISON[kpi.comparison] || kpi.comparison} ${withUnit(value, kpi.unit)}`;
  }

  function targetsTitle(kpi) {
    const lines = kpi.targets.map(
      (t, i) => `• ${targetText(kpi, t.value)}${i === 0 ? " (действует)" : ""} — ${t.source}`,
    );
    return ["Цели и их источники:", ...lines, `Основание: ${kpi.clause}`].join("\n");
  }

  function term(kpi) {
    if (kpi.accumulation === "yearly" || kpi.accumulation === "held_in_year") return "ежегодно";
    if (kpi.accumulation === "monthly") return "ежемесячно";
    if (kpi.deadline) return `до ${ruDate(kpi.deadline)}`;
    return kpi.accumulation === "current" ? "на дату" : "накопительно";
  }

  function forecastTitle(kpi) {
    if (kpi.forecast === null) {
      return kpi.comparison === "growth" || kpi.comparison === "decline"
        ? "Для показателя динамики прогноз не строится"
        : "Недостаточно данных для прогноза";
    }
    if (kpi.accumulation === "current") return "Текущее значение: показатель считается на дату";
    const until =
      kpi.accumulation === "monthly"
        ? "концу месяца"
        : kpi.accumulation === "yearly" || kpi.accumulation === "held_in_year"
          ? "концу года"
          : ruDate(kpi.deadline);
    return `Значение к ${until} при темпе последних 90 дней`;
  }

  const statusOf = (kpi) => (kpi && STATUS[kpi.status] ? kpi.status : "no_data");

  /** «за 2026 год», «на 31.12.2024»: the period a KPI's status is about, if the API says;
   * not for a KPI past its deadline whose value on it is shown (that line names the date). */
  function periodLabel(kpi) {
    const period = kpi && kpi.period;
    if (!period || typeof period.label !== "string" || !period.label) return null;
    return period.passed && deadlineLine(kpi) ? null : period.label;
  }

  /** «на 31.12.2024: 7,2 % — не достигнут (срок прошёл)»: where a KPI whose deadline has
   * passed stood on it, if the API says. */
  function deadlineLine(kpi) {
    const then = kpi && kpi.at_deadline;
    if (!then || !then.on) return null;
    if (then.value === null || then.value === undefined) return `на ${ruDate(then.on)}: нет данных (срок прошёл)`;
    const verdict = then.met === true ? " — достигнут" : then.met === false ? " — не достигнут" : "";
    return `на ${ruDate(then.on)}: ${withUnit(then.value, kpi.unit)}${verdict} (срок прошёл)`;
  }

  // --- DOM helpers -------------------------------------------------------------------------

  function fill(node, attrs, children) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "dataset") {
        for (const [k, v] of Object.entries(value)) node.dataset[k] = v === null ? "" : String(v);
      } else if (key.startsWith("on")) {
        node.addEventListener(key.slice(2), value);
      } else {
        node.setAttribute(key, value === true ? "" : String(value));
      }
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const el = (tag, attrs = {}, ...children) => fill(document.createElement(tag), attrs, children);
  const svg = (tag, attrs = {}, ...children) =>
    fill(document.createElementNS(SVG_NS, tag), attrs, children);

  function badge(status) {
    return el("span", { class: `badge status-${status}` }, STATUS[status]);
  }

  // --- the API -----------------------------------------------------------------------------

  const cache = new Map();

  /** Every item of a paged list (``{items, total, offset, limit}``), page by page to its end. */
  async function everyPage(path) {
    const items = [];
    for (;;) {
      const page = await api(`${path}&offset=${items.length}&limit=1000`);
      items.push(...page.items);
      if (!page.items.length || items.length >= page.total) return items;
    }
  }

  function api(path) {
    const hit = cache.get(path);
    if (hit && Date.now() - hit.at < CACHE_MS) return hit.promise;
    const promise = fetch(path, { headers: { Accept: "application/json" } }).then(async (r) => {
      const body = await r.json().catch(() => null);
      if (!r.ok) {
        const detail = body && typeof body.detail === "string" ? body.detail : "";
        throw new Error(detail || `Сервис ответил ошибкой ${r.status} на запрос ${path}`);
      }
      return body;
    });
    cache.set(path, { at: Date.now(), promise });
    promise.catch(() => cache.delete(path));
    return promise;
  }

  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined) q.set(k, v);
    const text = q.toString();
    return text ? `?${text}` : "";
  }

  // --- where the user is ------------------------------------------------------------------

  function parseHash() {
    const [path, search = ""] = location.hash.replace(/^#/, "").split("?");
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    const q = new URLSearchParams(search);
    const route = { municipality: null, organization: null, asOf: q.get("as_of"), kpi: q.get("kpi") };
    if (parts[0] === "m" && parts[1]) {
      route.municipality = parts[1];
      if (parts[2] === "o" && parts[3]) route.organization = parts[3];
    }
    return route;
  }

  function hashFor(route) {
    let path = "#/";
    if (route.municipality) {
      path += `m/${encodeURIComponent(route.municipality)}`;
      if (route.organization) path += `/o/${encodeURIComponent(route.organization)}`;
    }
    return path + query({ as_of: route.asOf || null, kpi: route.kpi || null });
  }

  /** Go somewhere else (a new history entry); the hashchange handler renders it. */
  function go(change) {
    const target = hashFor({ ...parseHash(), ...change });
    if (target === location.hash || (target === "#/" && !location.hash)) render();
    else location.hash = target;
  }

  const linkTo = (change) => hashFor({ ...parseHash(), ...change });

  // --- loading a level ---------------------------------------------------------------------

  let generation = 0; // a newer render makes the answers of older ones stale
  let view = null; // what is drawn: see load()
  let selected = null; // the code of the KPI shown in the detail panel
  let serverToday = null; // the service's "today", from a load without as_of
  let shownLevel = null; // the level drawn last: a new one is shown from its top
  let regionName = "Регион"; // until the catalogue says (IOMFLOW_REGION_NAME)
  let analyticsUrl = null; // the diagnostics' analytics workbook (IOMFLOW_DIAGNOSTICS_PUBLIC_URL)

  async function load(route) {
    const asOf = query({ as_of: route.asOf });
    if (!route.municipality) {
      const data = await api(`v1/kpis${asOf}`);
      return {
        kind: "region",
        asOf: data.as_of,
        computedAt: data.computed_at || null,
        title: regionName,
        counts: data.region.counts,
        kpis: data.region.kpis,
        municipality: null,
        organization: null,
        unitKind: "municipality",
        units: data.municipalities
          .filter((m) => m.municipality_id) // a level with no members answers with a null key
          .map((m) => ({
          id: m.municipality_id,
          name: m.name || m.municipality_id,
          counts: m.counts,
          kpis: m.kpis,
        })),
      };
    }
    const id = encodeURIComponent(route.municipality);
    const data = await api(`v1/municipalities/${id}/kpis${asOf}`);
    const municipality = { id: data.municipality_id, name: data.name || data.municipality_id };
    const units = data.organizations
      .filter((o) => o.organization_id)
      .map((o) => ({ id: o.organization_id, name: o.name || o.organization_id, counts: null, kpis: o.kpis }));
    const level = {
      asOf: data.as_of,
      municipality,
      municipalityKpis: data.kpis,
      unitKind: "organization",
      units,
    };
    if (!route.organization) {
      return { ...level, kind: "municipality", title: municipality.name, counts: data.counts, kpis: data.kpis, organization: null };
    }
    const organization = units.find((o) => o.id === route.organization);
    if (!organization) {
      throw new Error(`Организация «${route.organization}» не найдена в муниципалитете «${municipality.name}».`);
    }
    return { ...level, kind: "organization", title: organization.name, counts: null, kpis: organization.kpis, organization };
  }

  async function render() {
    const route = parseHash();
    const mine = ++generation;
    document.body.dataset.state = "loading";
    try {
      const loaded = await load(route);
      if (mine !== generation) return;
      if (!route.asOf) serverToday = loaded.asOf;
      view = loaded;
      hideError();
      draw(route);
      const level = [view.kind, view.municipality?.id, view.organization?.id].join("/");
      if (shownLevel !== null && level !== shownLevel) window.scrollTo(0, 0); // a drill-down
      shownLevel = level;
      document.body.dataset.state = "ready";
      drawAlerts(mine);
      drawTracked(mine);
    } catch (error) {
      if (mine !== generation) return;
      showError(error.message || String(error));
      $("content").hidden = true; // not the values of another date or level under the error
      if (route.asOf) $("as-of").value = route.asOf;
      document.body.dataset.state = "error";
    }
  }

  function showError(text) {
    const box = $("error");
    box.textContent = `Не удалось загрузить данные: ${text}`;
    box.hidden = false;
  }

  function hideError() {
    $("error").hidden = true;
    $("error").textContent = "";
  }

  // --- drawing a level ---------------------------------------------------------------------

  function draw(route) {
    document.body.dataset.view = view.kind;
    document.body.dataset.asOf = view.asOf;
    $("content").hidden = false;
    const picker = $("as-of");
    picker.value = view.asOf;
    picker.max = serverToday || new Date().toISOString().slice(0, 10);
    document.title = `${view.title} — мониторинг РС НМС на ${ruDate(view.asOf)}`;

    drawBreadcrumb();
    $("level-title").textContent = `${view.title} — на ${ruDate(view.asOf)}`;
    // The region's answer is a snapshot, renewed a few seconds after the events: say when.
    $("computed").textContent = view.computedAt
      ? `Рассчитано: ${new Date(view.computedAt).toLocaleString("ru-RU")}`
      : "";
    drawCounts();
    drawReportLinks();
    drawKpiTable();
    $("tracked").hidden = view.kind !== "region";
    $("units").hidden = view.kind === "organization";
    $("units-title").textContent = view.kind === "region" ? "Муниципалитеты" : "Образовательные организации";
    $("unit-teachers").hidden = view.unitKind !== "municipality";

    const codes = view.kpis.map((k) => k.code);
    select(codes.includes(route.kpi) ? route.kpi : codes.includes(selected) ? selected : codes[0]);
  }

  function drawBreadcrumb() {
    const nav = $("breadcrumb");
    const crumbs = [];
    const here = (crumb, text) => el("span", { "aria-current": "page", dataset: { crumb } }, text);
    const link = (crumb, text, change) => el("a", { href: linkTo(change), dataset: { crumb } }, text);
    if (view.kind === "region") {
      crumbs.push(here("region", regionName));
    } else {
      crumbs.push(link("region", regionName, { municipality: null, organization: null }));
      if (view.kind === "municipality") {
        crumbs.push(here("municipality", view.municipality.name));
      } else {
        crumbs.push(link("municipality", view.municipality.name, { organization: null }));
        crumbs.push(here("organization", view.organization.name));
      }
    }
    nav.replaceChildren(...crumbs.flatMap((c, i) => (i ? [el("span", { class: "sep" }, "›"), c] : [c])));
  }

  function drawCounts() {
    const box = $("counts");
    box.hidden = !view.counts;
    box.replaceChildren(
      ...(view.counts
        ? COUNTS.map(([key, label]) =>
            el("div", { dataset: { count: key } }, el("dt", {}, label), el("dd", {}, number(view.counts[key] ?? 0))),
          )
        : []),
    );
  }

  function drawKpiTable() {
    const rows = view.kpis.map((kpi) => {
      const status = statusOf(kpi);
      const share = kpi.unit === "%" && kpi.population ? `${number(kpi.numerator)} из ${number(kpi.population)}` : null;
      const row = el(
        "tr",
        {
          class: `status-${status}`,
          tabindex: 0,
          "aria-selected": "false",
          dataset: { kpi: kpi.code, status },
          onclick: () => choose(kpi.code),
          onkeydown: (e) => {
            if (e.key === "Enter" || e.key === " ") {
              e.preventDefault();
              choose(kpi.code);
            }
          },
        },
        el("td", { class: "kpi-name", title: `Код показателя: ${kpi.code}` }, el("span", { class: "name" }, kpi.name)),
        el(
          "td",
          { class: "value num", dataset: { value: kpi.value } },
          el("span", { class: "num" }, withUnit(kpi.value, kpi.unit)),
          share && el("small", {}, share),
        ),
        el(
          "td",
          { class: "target num", title: targetsTitle(kpi), dataset: { target: kpi.target } },
          targetText(kpi, kpi.target),
          kpi.targets.length > 1 && el("span", { class: "more" }, `+${kpi.targets.length - 1}`),
          kpi.targets.length > 1 &&
            el("small", {}, `другие: ${kpi.targets.slice(1).map((t) => withUnit(t.value, kpi.unit)).join(", ")}`),
        ),
        el(
          "td",
          { class: "status", dataset: { status } },
          badge(status),
          periodLabel(kpi) && el("small", { class: "period" }, periodLabel(kpi)),
          deadlineLine(kpi) && el("small", { class: "at-deadline" }, deadlineLine(kpi)),
        ),
        el(
          "td",
          { class: "forecast num", title: forecastTitle(kpi), dataset: { forecast: kpi.forecast } },
          withUnit(kpi.forecast, kpi.unit),
        ),
        el("td", { class: "term", title: `Учёт: ${ACCUMULATION[kpi.accumulation] || kpi.accumulation}` }, term(kpi)),
      );
      return row;
    });
    $("kpi-table").tBodies[0].replaceChildren(...rows);
    drawSummary();
  }

  /** The yearly report of the year shown (the workbook, the printable page, the PDF) and,
   * when its address is known, the diagnostics' analytics workbook. */
  function drawReportLinks() {
    const year = view.asOf.slice(0, 4);
    const parts = [
      `Информационно-аналитическая справка за ${year} год: `,
      el("a", { href: `v1/reports/${year}.xlsx`, dataset: { report: "xlsx" } }, "таблица Excel"),
      " · ",
      el("a", { href: `v1/reports/${year}/print`, target: "_blank", dataset: { report: "print" } }, "для печати"),
      " · ",
      el("a", { href: `v1/reports/${year}.pdf`, target: "_blank", dataset: { report: "pdf" } }, "PDF"),
    ];
    if (analyticsUrl) {
      parts.push(
        ". Аналитика диагностики профессиональных дефицитов: ",
        el("a", { href: analyticsUrl, dataset: { report: "analytics" } }, "таблица Excel"),
      );
    }
    $("report").replaceChildren(...parts);
  }

  /** «Достигнуто: 4 · Под угрозой: 8 …»: the level's statuses at a glance. */
  function drawSummary() {
    const tally = {};
    for (const kpi of view.kpis) tally[statusOf(kpi)] = (tally[statusOf(kpi)] || 0) + 1;
    const parts = SUMMARY.filter(([s]) => tally[s]).map(([s, label]) =>
      el("span", { class: `part status-${s}`, dataset: { status: s, count: tally[s] } }, el("span", { class: `dot status-${s}` }), `${label}: ${tally[s]}`),
    );
    $("summary").replaceChildren(...parts.flatMap((p, i) => (i ? [el("span", { class: "sep" }, "·"), p] : [p])));
  }

  /** The open alerts of this level: all of them for the region; for a municipality (and
   * its schools) its own, and the municipalities' alert of each KPI off path in it. */
  async function drawAlerts(mine) {
    const list = $("alerts-list");
    let alerts;
    try {
      alerts = await everyPage("v1/alerts?status=open");
    } catch (error) {
      if (mine !== generation) return;
      list.replaceChildren();
      $("alerts-note").textContent = `Оповещения не загрузились: ${error.message || error}`;
      return;
    }
    if (mine !== generation) return;
    const here = view.municipality;
    const offPath = new Set(
      (view.municipalityKpis || []).filter((k) => k.status === "at_risk" || k.status === "missed").map((k) => k.code),
    );
    const shown = here
      ? alerts.filter((a) => a.municipality_id === here.id || (a.alert_id.endsWith(":municipalities") && offPath.has(a.subject)))
      : alerts;
    const critical = shown.filter((a) => a.severity === "critical").length;
    $("alerts-note").textContent = shown.length
      ? `Открытых оповещений: ${shown.length}, из них важных: ${critical}.`
      : "Открытых оповещений нет.";
    list.replaceChildren(
      ...shown.map((a) =>
        el(
          "li",
          { class: `alert severity-${a.severity}`, dataset: { alert: a.alert_id, severity: a.severity } },
          el("span", { class: `badge severity-${a.severity}` }, SEVERITY[a.severity] || a.severity),
          el("span", { class: "message" }, a.message),
          el("small", {}, `с ${ruDate(a.raised_at.slice(0, 10))}`),
        ),
      ),
    );
    $("alerts").dataset.state = "ready";
  }

  /** The rows of Appendix 1 that are measures taken, not numbers (v1/tracked, as of
   * today), on the region's view: each by its name with its latest period, the status in
   * words (the KPIs' colours) and the evidence recorded; the code in the tooltip only. */
  async function drawTracked(mine) {
    const box = $("tracked");
    if (view.kind !== "region") return;
    delete box.dataset.state;
    const list = $("tracked-list");
    let items;
    try {
      items = await api("v1/tracked");
    } catch (error) {
      if (mine !== generation) return;
      list.replaceChildren();
      $("tracked-note").textContent = `Сведения о мерах не загрузились: ${error.message || error}`;
      box.dataset.state = "error";
      return;
    }
    if (mine !== generation) return;
    const found = Array.isArray(items) ? items : [];
    const another = serverToday !== null && view.asOf !== serverToday;
    $("tracked-note").textContent = found.length
      ? TRACKED_NOTE + (another ? " Статус — на сегодня, а не на выбранную дату." : "")
      : "В каталоге нет мер без числового показателя.";
    list.replaceChildren(...found.map(trackedItem));
    box.dataset.state = "ready";
  }

  function trackedItem(item) {
    const periods = Array.isArray(item.periods) ? item.periods : [];
    const last = periods.length ? periods[periods.length - 1] : null;
    const status = last && STATUS[last.status] ? last.status : "no_data";
    const evidence = last && last.evidence ? last.evidence : null;
    const recorded = last && last.recorded
      ? [
          last.recorded_words ? `отмечено «${last.recorded_words}»` : null,
          last.recorded_by,
          last.recorded_at ? ruDate(String(last.recorded_at).slice(0, 10)) : null,
        ].filter(Boolean).join(", ")
      : null;
    const tip = [item.target, item.clause && `Основание: ${item.clause}`, `Код: ${item.code}`].filter(Boolean);
    return el(
      "li",
      {
        class: `tracked-item status-${status}`,
        title: tip.join(". "),
        dataset: { tracked: item.code, status, period: last ? last.period : null },
      },
      el("span", { class: "name" }, item.name),
      el("span", { class: "state" }, last && el("span", { class: "period" }, last.label), badge(status)),
      el("span", { class: evidence ? "evidence" : "evidence none" }, evidence || NOT_RECORDED),
      recorded && el("small", { class: "recorded" }, recorded),
    );
  }

  /** The user picked a KPI: remember it in the address without a new history entry. */
  function choose(code) {
    history.replaceState(null, "", linkTo({ kpi: code }));
    select(code);
    if (window.matchMedia("(max-width: 1100px)").matches) $("detail").scrollIntoView();
  }

  function select(code) {
    selected = code;
    const kpi = view.kpis.find((k) => k.code === code);
    for (const row of $("kpi-table").tBodies[0].rows) {
      row.setAttribute("aria-selected", String(row.dataset.kpi === code));
    }
    drawDetail(kpi);
    drawUnits(kpi);
    drawCompare(kpi);
    drawSeries(kpi);
  }

  function drawDetail(kpi) {
    const status = statusOf(kpi);
    $("detail").dataset.kpi = kpi.code;
    $("detail-title").textContent = kpi.name;
    $("detail-value").replaceChildren();
    fill($("detail-value"), {}, [
      `${view.title}: `,
      el("strong", {}, withUnit(kpi.value, kpi.unit)),
      " ",
      badge(status),
      periodLabel(kpi) && ` ${periodLabel(kpi)}`,
      kpi.forecast !== null && kpi.forecast !== undefined && ` прогноз ${withUnit(kpi.forecast, kpi.unit)}`,
      deadlineLine(kpi) && el("small", { class: "at-deadline" }, deadlineLine(kpi)),
    ]);
    $("detail-targets").replaceChildren(
      ...kpi.targets.map((t, i) =>
        el(
          "li",
          { class: i === 0 ? "in-force" : null },
          `${targetText(kpi, t.value)}${i === 0 ? " (действует)" : ""} — ${t.source}`,
        ),
      ),
    );
    const deadline = kpi.deadline ? `, срок ${ruDate(kpi.deadline)}` : "";
    const parts = Object.entries(kpi.breakdown || {}).map(
      ([key, n]) => `${BREAKDOWN[key] || key} — ${n}`,
    );
    const broken = parts.length ? ` В разбивке: ${parts.join("; ")}.` : "";
    $("detail-note").textContent = `Основание: ${kpi.clause}. Учёт: ${ACCUMULATION[kpi.accumulation] || kpi.accumulation}${deadline}.${broken}`;
  }

  function unitChange(id) {
    return view.unitKind === "municipality"
      ? { municipality: id, organization: null }
      : { municipality: view.municipality.id, organization: id };
  }

  function drawUnits(kpi) {
    $("unit-selected").textContent = "Выбранный показатель";
    $("unit-selected").title = kpi.name;
    const rows = view.units.map((unit) => {
      const mine = unit.kpis.find((k) => k.code === kpi.code);
      const status = statusOf(mine);
      const tally = { met: 0, at_risk: 0, missed: 0, no_data: 0 };
      for (const k of unit.kpis) {
        const status = statusOf(k);
        const s = status === "on_track" ? "met" : status;
        if (s in tally) tally[s] += 1; // a value without a target at this level is not tallied
      }
      const data = view.unitKind === "municipality" ? { municipality: unit.id } : { organization: unit.id };
      return el(
        "tr",
        { dataset: data },
        el("td", {}, el("a", { href: linkTo(unitChange(unit.id)), dataset: data }, unit.name)),
        view.unitKind === "municipality" && el("td", { class: "num" }, number(unit.counts?.teachers ?? 0)),
        el(
          "td",
          { class: `num selected-value status-${status}`, title: STATUS[status], dataset: { value: mine ? mine.value : null, status } },
          el("span", { class: `dot status-${status}` }),
          withUnit(mine ? mine.value : null, kpi.unit),
        ),
        ...["met", "at_risk", "missed", "no_data"].map((s) => el("td", { class: "num", dataset: { tally: s } }, tally[s])),
      );
    });
    $("unit-table").tBodies[0].replaceChildren(...rows);
  }

  // --- charts ------------------------------------------------------------------------------

  /** A round upper bound for an axis (1, 2, 2.5 or 5 times a power of ten); at most 100 %. */
  function axisMax(value, unit) {
    if (!(value > 0)) return unit === "%" ? 10 : 1;
    const raised = value * 1.05;
    const power = 10 ** Math.floor(Math.log10(raised));
    const round = [1, 2, 2.5, 5, 10].map((s) => s * power).find((s) => s >= raised);
    return unit === "%" ? Math.min(round, 100) : round;
  }

  const ticks = (max) => [0, 1, 2, 3, 4, 5].map((i) => (max * i) / 5);

  /** The width of ``text`` in a chart's own units (its font, 11 user units high). */
  const textWidth = (() => {
    const context = document.createElement("canvas").getContext("2d");
    return (text, chart) => {
      context.font = `11px ${getComputedStyle(chart).fontFamily}`;
      return context.measureText(text).width;
    };
  })();

  /** ``text`` in lines no wider than ``width`` (at word breaks; a longer word alone). */
  function wrapText(text, width, chart) {
    const lines = [];
    let line = "";
    for (const word of text.split(/\s+/).filter(Boolean)) {
      const longer = line ? `${line} ${word}` : word;
      if (line && textWidth(longer, chart) > width) {
        lines.push(line);
        line = word;
      } else {
        line = longer;
      }
    }
    if (line) lines.push(line);
    return lines.length ? lines : [""];
  }

  function drawSeries(kpi) {
    const chart = $("series-chart");
    const scope = view.municipality;
    const where = scope ? `муниципалитет «${scope.name}»` : "регион";
    const caveat = view.kind === "organization" ? " (по организации динамика не строится)" : "";
    $("series-caption").textContent = `Динамика за ${SERIES_MONTHS} месяцев — ${where}${caveat}`;
    chart.dataset.kpi = kpi.code;
    chart.dataset.state = "loading";
    const mine = generation;
    const path = `v1/kpis/${encodeURIComponent(kpi.code)}/series${query({
      months: SERIES_MONTHS,
      municipality_id: scope ? scope.id : null,
      as_of: view.asOf,
    })}`;
    api(path).then(
      (data) => {
        if (mine !== generation || selected !== kpi.code) return;
        plotSeries(chart, kpi, data.points);
        chart.dataset.state = "ready";
      },
      (error) => {
        if (mine !== generation || selected !== kpi.code) return;
        chart.replaceChildren(svg("text", { x: 10, y: 20, class: "empty" }, `Нет графика: ${error.message}`));
        chart.setAttribute("viewBox", "0 0 560 40");
        chart.dataset.state = "error";
      },
    );
  }

  function plotSeries(chart, kpi, points) {
    const W = 560;
    const H = 230;
    const m = { l: 46, r: 24, t: 14, b: 28 };
    const values = points.map((p) => p.value).filter((v) => v !== null);
    const target = kpi.comparison === "growth" || kpi.comparison === "decline" ? null : kpi.target;
    const max = axisMax(Math.max(0, ...values, target ?? 0), kpi.unit);
    const x = (i) => m.l + ((W - m.l - m.r) * (points.length === 1 ? 0.5 : i / (points.length - 1)));
    const y = (v) => H - m.b - ((H - m.t - m.b) * Math.min(v, max)) / max;
    const parts = [];
    for (const t of ticks(max)) {
      parts.push(svg("line", { class: "grid-line", x1: m.l, x2: W - m.r, y1: y(t), y2: y(t) }));
      parts.push(svg("text", { class: "axis-label", x: m.l - 6, y: y(t) + 4, "text-anchor": "end" }, number(t)));
    }
    const every = points.length > 12 ? 2 : 1; // the last month is always labelled
    points.forEach((p, i) => {
      if ((points.length - 1 - i) % every !== 0) return;
      const [year, month] = p.on.split("-");
      const label = `${MONTHS[Number(month) - 1]} ${year.slice(2)}`;
      parts.push(svg("text", { class: "axis-label", x: x(i), y: H - 8, "text-anchor": "middle" }, label));
    });
    if (target !== null) {
      parts.push(svg("line", { class: "target-line", x1: m.l, x2: W - m.r, y1: y(target), y2: y(target) }));
      const above = y(target) > m.t + 14;
      parts.push(
        svg(
          "text",
          { class: "target-label", x: W - m.r, y: above ? y(target) - 5 : y(target) + 13, "text-anchor": "end" },
          `цель: ${targetText(kpi, target)}`,
        ),
      );
    }
    // The line, broken where a month has no value.
    let d = "";
    let pen = false;
    points.forEach((p, i) => {
      if (p.value === null) {
        pen = false;
        return;
      }
      d += `${pen ? "L" : "M"}${x(i).toFixed(1)} ${y(p.value).toFixed(1)} `;
      pen = true;
    });
    if (d) parts.push(svg("path", { class: "series-line", d: d.trim() }));
    points.forEach((p, i) => {
      if (p.value === null) return;
      parts.push(
        svg(
          "circle",
          { class: "series-point", cx: x(i), cy: y(p.value), r: 3.5, dataset: { on: p.on, value: p.value } },
          svg("title", {}, `${ruDate(p.on)}: ${withUnit(p.value, kpi.unit)}`),
        ),
      );
    });
    if (!values.length) {
      parts.push(svg("text", { class: "empty", x: W / 2, y: H / 2, "text-anchor": "middle" }, "Нет данных за период"));
    }
    chart.setAttribute("viewBox", `0 0 ${W} ${H}`);
    chart.dataset.points = String(points.length);
    chart.replaceChildren(...parts);
  }

  function drawCompare(kpi) {
    const chart = $("compare-chart");
    const whose =
      view.unitKind === "municipality" ? "муниципалитетов" : `организаций муниципалитета «${view.municipality.name}»`;
    $("compare-caption").textContent = `Сравнение ${whose} (нажмите на столбец, чтобы открыть)`;
    const rows = view.units
      .map((unit) => ({ unit, kpi: unit.kpis.find((k) => k.code === kpi.code) }))
      .filter((r) => r.kpi);
    rows.sort(
      (a, b) =>
        (b.kpi.value ?? -Infinity) - (a.kpi.value ?? -Infinity) || a.unit.name.localeCompare(b.unit.name, "ru"),
    );
    const W = 560;
    const right = 62;
    const top = 22;
    const lineH = 13;
    // Names in full: the column as wide as the longest (up to 45 % of the chart), longer
    // names wrapped onto more lines, each row as tall as its name.
    const widest = Math.max(60, ...rows.map((r) => textWidth(r.unit.name, chart)));
    const left = Math.ceil(Math.min(widest, W * 0.45)) + 8;
    const laid = rows.map((r) => ({ ...r, lines: wrapText(r.unit.name, left - 8, chart) }));
    const heights = laid.map((r) => Math.max(20, r.lines.length * lineH + 7));
    const H = top + (heights.reduce((a, b) => a + b, 0) || 20) + 6;
    const target = kpi.comparison === "growth" || kpi.comparison === "decline" ? null : kpi.target;
    const max = axisMax(Math.max(0, ...rows.map((r) => r.kpi.value ?? 0), target ?? 0), kpi.unit);
    const x = (v) => left + ((W - left - right) * Math.min(v, max)) / max;
    const parts = [];
    for (const t of ticks(max)) {
      parts.push(svg("line", { class: "grid-line", x1: x(t), x2: x(t), y1: top - 4, y2: H - 4 }));
      parts.push(svg("text", { class: "axis-label", x: x(t), y: top - 8, "text-anchor": "middle" }, number(t)));
    }
    const current = view.organization ? view.organization.id : null;
    let y = top;
    laid.forEach(({ unit, kpi: value, lines }, i) => {
      const status = statusOf(value);
      const rowH = heights[i];
      const middle = y + rowH / 2;
      const width = value.value ? Math.max(x(value.value) - left, 1.5) : 0;
      const data = view.unitKind === "municipality" ? { municipality: unit.id } : { organization: unit.id };
      const open = () => go(unitChange(unit.id));
      parts.push(
        svg(
          "g",
          {
            class: `bar${unit.id === current ? " current" : ""}`,
            role: "link",
            tabindex: 0,
            dataset: { ...data, value: value.value, status },
            onclick: open,
            onkeydown: (e) => {
              if (e.key === "Enter") open();
            },
          },
          svg("title", {}, `${unit.name}: ${withUnit(value.value, kpi.unit)} — ${STATUS[status]}`),
          svg(
            "text",
            { class: "bar-name", x: left - 6, y: middle - ((lines.length - 1) * lineH) / 2 + 4, "text-anchor": "end" },
            ...lines.map((line, j) => svg("tspan", { x: left - 6, dy: j ? lineH : 0 }, line)),
          ),
          svg("rect", { class: `status-${status}`, x: left, y: middle - 6.5, width, height: 13, rx: 2 }),
          svg(
            "text",
            { class: "bar-value", x: left + width + 4, y: middle + 4 },
            value.value === null ? "нет данных" : withUnit(value.value, kpi.unit),
          ),
        ),
      );
      y += rowH;
    });
    if (!rows.length) {
      parts.push(svg("text", { class: "empty", x: left, y: top + 14 }, "Нет данных"));
    }
    if (target !== null) {
      parts.push(svg("line", { class: "target-line", x1: x(target), x2: x(target), y1: top - 4, y2: H - 4 }));
    }
    chart.setAttribute("viewBox", `0 0 ${W} ${H}`);
    chart.dataset.kpi = kpi.code;
    chart.replaceChildren(...parts);
  }

  // --- start -------------------------------------------------------------------------------

  function start() {
    $("as-of").addEventListener("change", (e) => {
      const value = e.target.value;
      go({ asOf: value || null });
    });
    $("today").addEventListener("click", () => go({ asOf: null }));
    window.addEventListener("hashchange", render);
    const catalogue = api("v1/catalogue").then(
      (found) => {
        $("source").textContent = `Показатели и цели: ${found.source}`;
        if (found.region_name) regionName = found.region_name;
      },
      () => {}, // the page works without it: the level is then called «Регион»
    );
    const reports = api("v1/reports").then(
      (found) => {
        if (found && typeof found.analytics_xlsx === "string") analyticsUrl = found.analytics_xlsx;
      },
      () => {}, // without it, no link to the analytics
    );
    Promise.all([catalogue, reports]).finally(render);
  }

  start();
})();
