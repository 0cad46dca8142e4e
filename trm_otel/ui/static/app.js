// trm-otel web UI: the dashboard list and the dashboard page, over the dashboards HTTP API.
//
// Vanilla JavaScript, no build step; charts are drawn by the plotly.min.js this
// server ships from the installed plotly package. Nothing is requested from any
// other host. What tests read is on window.trmOtel: `fetches` (panel id -> data
// requests made), `requests` (their URLs), `events` (stream events received),
// `lookups` (label_values() variable lookups: {variable, url, ok, error}), `alerts`
// (the alert summary shown), and document.body.dataset.ready = "1" once every
// panel finished its first load.
(function () {
  "use strict";

  const PRESETS = ["1h", "6h", "24h", "7d", "30d"];
  const PANEL_TYPES = ["line", "bar", "pie", "scatter", "heatmap", "stat", "table"];
  const TIME_TYPES = new Set(["line", "bar", "scatter", "heatmap"]);
  const ALL = "$__all";
  const COLUMNS = 12;
  const TOKEN_KEY = "trmOtel.token";
  const THEME_KEY = "trmOtel.theme";
  const LIVE_DEBOUNCE_MS = 400;
  const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';

  const T = (window.trmOtel = { fetches: {}, requests: [], events: {}, lookups: [], readyAt: null });

  // plotly.min.js (preloaded by the page) is run here rather than by a <script> tag, so the
  // dashboard and its panel data are fetched while the browser is still compiling it.
  const plotlyReady = document.body.dataset.plotly ? loadScript(document.body.dataset.plotly) : Promise.resolve();
  plotlyReady.catch(() => {});

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = src;
      script.onload = () => resolve();
      script.onerror = () => reject(new Error(`${src} did not load`));
      document.head.append(script);
    });
  }

  // ------------------------------------------------------------------ helpers

  const $ = (selector, root) => (root || document).querySelector(selector);
  const $$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));
  const clone = (value) => JSON.parse(JSON.stringify(value));
  const enc = encodeURIComponent;
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  /** h("button", {class: "x", onclick: f, "aria-label": "y"}, "text", node, ...) */
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "value") node.value = value;
      else if (key in node && typeof value !== "string") node[key] = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const storage = {
    get(key) {
      try { return window.localStorage.getItem(key); } catch (e) { return null; }
    },
    set(key, value) {
      try { window.localStorage.setItem(key, value); } catch (e) { /* storage disabled */ }
    },
  };

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.error) || `HTTP ${status}`);
      this.status = status;
      this.body = body || {};
    }
  }

  /** JSON in and out; throws ApiError (with .status and .body) on any non-2xx answer. */
  async function api(path, options) {
    options = options || {};
    const headers = { Accept: "application/json" };
    const token = storage.get(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    let body;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers["Content-Type"] = "application/json";
    }
    const response = await fetch(path, {
      method: options.method || "GET", headers, body, signal: options.signal, cache: "no-store",
    });
    const text = await response.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = { error: text.slice(0, 300) }; }
    }
    if (response.status === 401) askForToken();
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  /** An error as a message and, when the API listed them, its problems ({path, message}). */
  function problemsNode(prefix, error) {
    const problems = (error && error.body && error.body.problems) || [];
    return [
      h("span", { text: `${prefix}: ${error.message}` }),
      problems.length
        ? h("ul", {}, problems.map((p) => h("li", {}, p.path ? h("code", { text: p.path }) : null, p.path ? ": " : "", p.message)))
        : null,
    ].filter(Boolean);
  }

  let noticeTimer = 0;
  /** One message at a time under the top bar: kind info|warn|error, content text or nodes, optional actions. */
  function notify(kind, content, actions) {
    const box = $("#notice");
    clearTimeout(noticeTimer);
    box.replaceChildren();
    box.dataset.kind = kind;
    box.setAttribute("role", kind === "error" ? "alert" : "status");
    box.append(h("div", {}, content));
    const buttons = (actions || []).map((a) => h("button", { type: "button", text: a.label, onclick: () => { hideNotice(); a.run(); } }));
    buttons.push(h("button", { type: "button", class: "ghost", text: "Dismiss", onclick: hideNotice }));
    box.append(h("div", { class: "actions" }, buttons));
    box.hidden = false;
    if (kind === "info" && !(actions || []).length) noticeTimer = setTimeout(hideNotice, 8000);
  }
  function hideNotice() {
    $("#notice").hidden = true;
  }

  function askForToken() {
    const dialog = $("#token-dialog");
    if (!dialog || dialog.open) return;
    const form = $("#token-form");
    form.onsubmit = () => {
      storage.set(TOKEN_KEY, form.elements.token.value.trim());
      window.location.reload();
    };
    dialog.showModal();
  }

  function formatTime(value) {
    if (value === undefined || value === null || value === "") return "";
    const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
    return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
  }

  /** "30s" / "1m" / "1h30m" -> milliseconds; 0 for "", "off" or anything unreadable. */
  function durationMs(text) {
    const units = { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000, w: 604800000 };
    let total = 0;
    let rest = String(text || "");
    const part = /^([0-9]+)(ms|s|m|h|d|w)/;
    while (rest) {
      const found = part.exec(rest);
      if (!found) return 0;
      total += Number(found[1]) * units[found[2]];
      rest = rest.slice(found[0].length);
    }
    return total;
  }

  /** Whether the API would read `text` as a time: now, now-2d, now/d, or an ISO-8601 time. */
  function looksLikeTime(text) {
    if (/^now(([+-][0-9]+[smhdwMy])|(\/[smhdwMy]))*$/.test(text)) return true;
    return /^\d{4}-\d{2}-\d{2}/.test(text) && !Number.isNaN(Date.parse(text));
  }

  function setupImport(input, onImported) {
    if (!input) return;
    input.addEventListener("change", async () => {
      const file = input.files && input.files[0];
      input.value = "";
      if (!file) return;
      let doc;
      try {
        doc = JSON.parse(await file.text());
      } catch (e) {
        notify("error", `${file.name} is not JSON: ${e.message}`);
        return;
      }
      importDocument(file.name, doc, false, onImported);
    });
  }

  async function importDocument(name, doc, overwrite, onImported) {
    try {
      const path = `/api/v1/dashboards/import${overwrite ? "?overwrite=true" : ""}`;
      const result = await api(path, { method: "POST", body: doc });
      const unmapped = result.unmapped || [];
      const parts = [
        "Imported ", h("a", { href: `/d/${enc(result.uid)}`, text: result.uid }), ` (version ${result.version}).`,
      ];
      if (unmapped.length) {
        parts.push(` ${unmapped.length} ${unmapped.length === 1 ? "item was" : "items were"} not carried over:`);
        parts.push(h("ul", { class: "unmapped" }, unmapped.map((item) => h("li", { text: typeof item === "string" ? item : JSON.stringify(item) }))));
      }
      notify(unmapped.length ? "warn" : "info", parts, [{ label: "Open it", run: () => { window.location.href = `/d/${enc(result.uid)}`; } }]);
      if (onImported) onImported(result);
    } catch (e) {
      if (e.status === 409) {
        notify("warn", `${name}: a dashboard with the same uid exists (version ${e.body.currentVersion}).`, [
          { label: "Replace it", run: () => importDocument(name, doc, true, onImported) },
        ]);
      } else {
        notify("error", problemsNode(`Could not import ${name}`, e));
      }
    }
  }

  // ------------------------------------------------------------------ theme

  const THEMES = {
    light: {
      text: "#1d2430", muted: "#5b6676", grid: "#e5e9ef", axis: "#c9d0da", surface: "#ffffff", surface2: "#eef1f5",
      colorway: ["#2563eb", "#e8590c", "#0ca678", "#d6336c", "#7048e8", "#f59f00", "#1098ad", "#5c940d", "#c2255c", "#495057"],
      heat: [[0, "#e8f0fe"], [0.25, "#a5c8ff"], [0.5, "#5b8def"], [0.75, "#2f4fb8"], [1, "#15206b"]],
      crosshair: "rgba(29, 36, 48, 0.55)",
      exemplar: "#c92a2a",
    },
    dark: {
      text: "#e4e8ee", muted: "#9aa5b5", grid: "#263040", axis: "#3a4656", surface: "#171d26", surface2: "#202836",
      colorway: ["#60a5fa", "#fb923c", "#34d399", "#f472b6", "#a78bfa", "#fbbf24", "#22d3ee", "#a3e635", "#fb7185", "#cbd5e1"],
      heat: [[0, "#1c2736"], [0.25, "#1f4f7a"], [0.5, "#2f86b8"], [0.75, "#7cc4d9"], [1, "#f2f7a1"]],
      crosshair: "rgba(228, 232, 238, 0.6)",
      exemplar: "#ff8787",
    },
  };

  /** A plotly template per theme: every chart takes its colours from here. */
  function plotlyTemplate(name) {
    const t = THEMES[name];
    const axis = { gridcolor: t.grid, linecolor: t.axis, zerolinecolor: t.axis, tickcolor: t.axis, tickfont: { color: t.muted } };
    return {
      layout: {
        paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
        font: { family: FONT, color: t.text, size: 12 }, colorway: t.colorway,
        xaxis: axis, yaxis: axis, legend: { font: { color: t.muted } },
        hoverlabel: { bgcolor: t.surface, bordercolor: t.axis, font: { color: t.text, family: FONT } },
      },
    };
  }

  function currentTheme() {
    return document.documentElement.dataset.theme === "dark" ? "dark" : "light";
  }

  function setupTheme(defaultTheme, onChange) {
    const button = $("#theme-toggle");
    const apply = (name, persist) => {
      document.documentElement.dataset.theme = name;
      button.setAttribute("aria-pressed", String(name === "dark"));
      if (persist) storage.set(THEME_KEY, name);
      if (onChange) onChange(name);
    };
    const saved = storage.get(THEME_KEY);
    apply(saved === "light" || saved === "dark" ? saved : defaultTheme || "light", false);
    button.onclick = () => apply(currentTheme() === "dark" ? "light" : "dark", true);
  }

  // ------------------------------------------------------------------ values and units

  const UNITS = {
    ms: { hover: ",.4~r", suffix: " ms" },
    s: { hover: ",.4~r", suffix: " s" },
    percentunit: { hover: ".2~%", tick: ".2~%", suffix: "" },
    percent: { hover: ",.2~f", suffix: "%" },
    reqps: { hover: ",.3~r", suffix: " req/s", axisSuffix: "/s" },
    Bps: { hover: ".3~s", tick: "~s", suffix: "B/s" },
    bytes: { hover: ".3~s", tick: "~s", suffix: "B" },
    short: { hover: ".3~s", tick: "~s", suffix: "" },
  };
  const unitFormat = (unit) => UNITS[unit] || { hover: ",.4~r", suffix: "" };

  function formatValue(value, unit) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    const num = (v, digits) => new Intl.NumberFormat(undefined, { maximumSignificantDigits: digits }).format(v);
    const si = (v) => {
      const prefixes = ["", "k", "M", "G", "T", "P"];
      let i = 0;
      while (Math.abs(v) >= 1000 && i < prefixes.length - 1) { v /= 1000; i += 1; }
      return num(v, 3) + " " + prefixes[i];
    };
    switch (unit) {
      case "percentunit": return num(value * 100, 3) + "%";
      case "percent": return num(value, 3) + "%";
      case "ms": return num(value, 4) + " ms";
      case "s": return num(value, 4) + " s";
      case "reqps": return num(value, 3) + " req/s";
      case "Bps": return si(value) + "B/s";
      case "bytes": return si(value) + "B";
      default: return num(value, 4);
    }
  }

  /** Text for plotly, which reads a little HTML (<b>, <a href>, ...) in names and cells: data stays text. */
  function esc(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function seriesName(series) {
    if (series.name) return esc(series.name);
    const labels = Object.entries(series.labels || {}).map(([k, v]) => `${k}=${v}`);
    return esc(labels.length ? labels.join(", ") : series.target !== undefined ? `query ${series.target}` : "value");
  }

  /** A series' single value: `value`, or the last non-null of `values` for a time series. */
  function valueOf(series) {
    if (series.value !== undefined) return series.value;
    const values = series.values || [];
    for (let i = values.length - 1; i >= 0; i -= 1) if (values[i] !== null) return values[i];
    return null;
  }

  // ------------------------------------------------------------------ charts

  const PLOT_CONFIG = {
    displaylogo: false, responsive: false, showTips: false,
    modeBarButtonsToRemove: ["lasso2d", "select2d", "autoScale2d"],
  };

  function noData(layout, message) {
    layout.xaxis = { visible: false };
    layout.yaxis = { visible: false };
    layout.annotations = [{ text: message || "No data", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: { size: 14, color: THEMES[currentTheme()].muted } }];
    return { data: [], layout };
  }

  /** The spans behind a latency chart (answer.exemplars) as points: hover shows the trace, a click leads to it. */
  function exemplarTrace(answer, theme) {
    const found = answer.exemplars || [];
    if (!found.length) return null;
    // Span names and attributes come from applications: escaped, as plotly reads tags (even links) in hover text.
    const escape = (text) => String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
    const detail = (e) => {
      const attrs = Object.entries(e.attributes || {}).slice(0, 4).map(([k, v]) => `${k}=${v}`);
      return [e.labels["span.name"] || "", ...attrs].filter(Boolean).map(escape).join("<br>");
    };
    return {
      type: "scatter", mode: "markers", name: "exemplars", showlegend: false, meta: "exemplars",
      x: found.map((e) => new Date(e.time * 1000)), y: found.map((e) => e.duration_ms),
      customdata: found.map((e) => [e.trace_id, e.span_id, detail(e)]),
      marker: { symbol: "diamond", size: 6, opacity: 0.75, color: THEMES[theme].exemplar, line: { width: 0 } },
      hovertemplate: "%{y:,.4~r} ms · trace %{customdata[0]}<br>%{customdata[2]}<extra>exemplar</extra>",
    };
  }

  /** A click on an exemplar point: its trace id, linked when the panel's options.traceUrl says where traces live. */
  function openExemplar(panel, point) {
    const [traceId, spanId] = point.customdata || [];
    if (!traceId) return;
    const template = panel.options && typeof panel.options.traceUrl === "string" ? panel.options.traceUrl : "";
    const url = template ? template.replaceAll("{trace_id}", traceId).replaceAll("{span_id}", spanId || "") : "";
    let safe = "";
    try {
      const parsed = url ? new URL(url, window.location.href) : null;
      if (parsed && (parsed.protocol === "http:" || parsed.protocol === "https:")) safe = parsed.href;
    } catch (_) { /* not a URL: show the id only */ }
    const content = safe
      ? h("span", {}, "Exemplar: trace ", h("a", { href: safe, target: "_blank", rel: "noopener noreferrer", text: traceId }))
      : h("span", {}, "Exemplar: trace ", h("code", { text: traceId }), spanId ? ` span ${spanId}` : "");
    window.trmOtel.exemplar = { traceId, spanId, url: safe };
    notify("info", content);
  }

  /** {data, layout} for one panel's answer. */
  function figure(panel, answer) {
    const theme = currentTheme();
    const type = answer.type || panel.type;
    const unit = answer.unit || (panel.options && panel.options.unit) || "";
    const options = panel.options || {};
    const fmt = unitFormat(unit);
    const series = answer.series || [];
    const layout = {
      template: plotlyTemplate(theme), autosize: true,
      margin: { l: 56, r: 14, t: 6, b: 30 }, showlegend: false,
    };
    const dates = (times) => (times || []).map((t) => new Date(t * 1000));
    const timeAxis = () => ({ type: "date", automargin: true, range: [new Date(answer.start * 1000), new Date(answer.end * 1000)] });
    const valueAxis = () => {
      const axis = { ticksuffix: fmt.axisSuffix !== undefined ? fmt.axisSuffix : fmt.suffix, automargin: true };
      if (fmt.tick) axis.tickformat = fmt.tick;
      if (typeof options.min === "number" && typeof options.max === "number") axis.range = [options.min, options.max];
      else if (options.min === 0) axis.rangemode = "tozero";
      return axis;
    };

    if (type === "line" || type === "bar" || type === "scatter") {
      if (!series.length) return noData(layout);
      const data = series.map((s) => ({
        type: type === "bar" ? "bar" : "scatter",
        mode: type === "scatter" ? "markers" : "lines",
        name: seriesName(s), x: dates(s.times), y: s.values || [],
        connectgaps: false,
        hovertemplate: `%{y:${fmt.hover}}${fmt.suffix}`,
      }));
      for (const trace of data) {
        if (type === "line") trace.line = { width: 1.6 };
        if (type === "scatter") trace.marker = { size: 5 };
      }
      layout.xaxis = timeAxis();
      layout.yaxis = valueAxis();
      layout.hovermode = "x";
      layout.hoverdistance = -1; // the nearest time wherever the pointer is: sparse series still join the crosshair
      if (type === "bar") layout.barmode = options.stacked ? "stack" : "group";
      const exemplars = type === "line" ? exemplarTrace(answer, theme) : null;
      if (data.length > 1) {
        layout.showlegend = true;
        layout.legend = { orientation: "h", x: 0, y: -0.12, yanchor: "top" };
        layout.margin.b = 52;
      }
      if (exemplars) data.push(exemplars);
      return { data, layout };
    }

    if (type === "heatmap") {
      const buckets = answer.buckets || [];
      const times = answer.times || [];
      const counts = answer.counts || [];
      if (!buckets.length || !times.length) return noData(layout);
      // Cell edges on a log axis: below the first upper bound, one bucket-ratio further down.
      const first = buckets[0] > 0 ? buckets[0] : (buckets[1] || 1) / 10;
      const ratio = buckets.length > 1 && buckets[0] > 0 ? buckets[1] / buckets[0] : 2;
      const edges = [first / ratio, ...buckets.map((b) => (b > 0 ? b : first))];
      const z = buckets.map((_, b) => times.map((_, t) => ((counts[t] || [])[b] ? counts[t][b] : null)));
      layout.xaxis = timeAxis();
      layout.yaxis = { type: "log", ticksuffix: " ms", automargin: true };
      const decades = Math.log10(edges[edges.length - 1] / edges[0]);
      if (decades > 1.5) layout.yaxis.dtick = 1; // powers of ten; narrower spans keep plotly's finer ticks
      layout.hovermode = "x";
      const data = [{
        type: "heatmap", x: dates(times), y: edges, z, colorscale: THEMES[theme].heat, hoverongaps: false,
        hovertemplate: "%{x}<br>≤ %{y:,.4~r} ms: %{z} spans<extra></extra>",
        colorbar: { thickness: 10, outlinewidth: 0, tickfont: { color: THEMES[theme].muted } },
      }];
      const exemplars = exemplarTrace(answer, theme);
      if (exemplars) {
        layout.hovermode = "closest"; // a point, not the column, under the pointer
        data.push(exemplars);
      }
      return { data, layout };
    }

    if (type === "pie") {
      const slices = series.filter((s) => (valueOf(s) || 0) > 0);
      if (!slices.length) return noData(layout);
      layout.margin = { l: 8, r: 8, t: 8, b: 8 };
      layout.showlegend = true;
      layout.legend = { orientation: "v", x: 1, xanchor: "left" };
      return {
        data: [{
          type: "pie", hole: 0.5, sort: false, textinfo: "percent",
          labels: slices.map(seriesName), values: slices.map(valueOf),
          marker: { line: { color: THEMES[theme].surface, width: 1 } },
          hovertemplate: `%{label}: %{value:${fmt.hover}}${fmt.suffix} (%{percent})<extra></extra>`,
        }],
        layout,
      };
    }

    if (type === "stat") {
      const shown = series.filter((s) => valueOf(s) !== null);
      if (!shown.length) return noData(layout);
      const columns = Math.min(shown.length, 4);
      const rows = Math.ceil(shown.length / columns);
      layout.margin = { l: 8, r: 8, t: shown.length > 1 ? 24 : 8, b: 8 };
      layout.grid = { rows, columns, pattern: "independent" };
      return {
        data: shown.map((s, i) => ({
          type: "indicator", mode: "number", value: valueOf(s),
          number: { valueformat: fmt.hover, suffix: fmt.suffix, font: { color: THEMES[theme].text } },
          title: shown.length > 1 ? { text: seriesName(s), font: { size: 12, color: THEMES[theme].muted } } : undefined,
          domain: { row: Math.floor(i / columns), column: i % columns },
        })),
        layout,
      };
    }

    if (type === "table") {
      if (!series.length) return noData(layout);
      const keys = [];
      for (const s of series) for (const key of Object.keys(s.labels || {})) if (!keys.includes(key)) keys.push(key);
      const rows = series.slice().sort((a, b) => (valueOf(b) ?? -Infinity) - (valueOf(a) ?? -Infinity));
      const header = keys.length ? [...keys, "value"] : ["series", "value"];
      const columns = keys.length ? keys.map((k) => rows.map((s) => esc((s.labels || {})[k] ?? ""))) : [rows.map(seriesName)];
      columns.push(rows.map((s) => formatValue(valueOf(s), unit)));
      const t = THEMES[theme];
      layout.margin = { l: 4, r: 4, t: 4, b: 4 };
      return {
        data: [{
          type: "table",
          columnwidth: header.map((_, i) => (i === header.length - 1 ? 1 : 2)),
          header: {
            values: header.map((k) => `<b>${esc(k)}</b>`), align: header.map((_, i) => (i === header.length - 1 ? "right" : "left")),
            fill: { color: t.surface2 }, line: { color: t.grid }, font: { color: t.text, size: 12 }, height: 26,
          },
          cells: {
            values: columns, align: header.map((_, i) => (i === header.length - 1 ? "right" : "left")),
            fill: { color: t.surface }, line: { color: t.grid }, font: { color: t.text, size: 12 }, height: 24,
          },
        }],
        layout,
      };
    }
    return noData(layout, `Unknown panel type ${type}`);
  }

  // ------------------------------------------------------------------ the dashboard list

  async function listPage() {
    setupTheme("light");
    const rows = $("#dash-rows");
    const state = $("#list-state");

    async function refresh() {
      let dashboards;
      try {
        dashboards = (await api("/api/v1/dashboards")).dashboards || [];
      } catch (e) {
        state.textContent = `Could not load the dashboards: ${e.message}`;
        state.hidden = false;
        return;
      }
      rows.replaceChildren(...dashboards.map((d) => h("tr", { "data-uid": d.uid },
        h("td", {}, h("a", { href: `/d/${enc(d.uid)}`, text: d.title || d.uid })),
        h("td", {}, (d.tags || []).map((tag) => h("span", { class: "tag", text: tag }))),
        h("td", { text: d.version }),
        h("td", {}, formatTime(d.updatedAt), d.updatedBy ? h("span", { class: "muted", text: ` by ${d.updatedBy}` }) : null),
        h("td", {}, h("button", {
          type: "button", class: "ghost danger", text: "Delete", "aria-label": `Delete ${d.title || d.uid}`,
          onclick: () => remove(d),
        })),
      )));
      state.textContent = dashboards.length ? "" : "No dashboards yet.";
      state.hidden = dashboards.length > 0;
      document.body.dataset.ready = "1";
    }

    async function remove(d) {
      if (!window.confirm(`Delete the dashboard "${d.title || d.uid}"? This cannot be undone.`)) return;
      try {
        await api(`/api/v1/dashboards/${enc(d.uid)}`, { method: "DELETE" });
        notify("info", `Deleted "${d.title || d.uid}".`);
      } catch (e) {
        notify("error", problemsNode("Could not delete it", e));
      }
      refresh();
    }

    const dialog = $("#new-dialog");
    const form = $("#new-form");
    $("#new-dashboard").onclick = () => {
      form.reset();
      $(".form-error", form).hidden = true;
      dialog.showModal();
    };
    $("[data-close]", form).onclick = () => dialog.close();
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const title = form.elements.title.value.trim();
      const slug = title.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 30) || "dashboard";
      const uid = `${slug}-${Math.random().toString(36).slice(2, 8)}`;
      try {
        const created = await api("/api/v1/dashboards", { method: "POST", body: { uid, title, panels: [] } });
        window.location.href = `/d/${enc(created.uid)}?edit=1`;
      } catch (e) {
        const box = $(".form-error", form);
        box.replaceChildren(...problemsNode("Not created", e));
        box.hidden = false;
      }
    });
    setupImport($("#import-file"), refresh);
    await refresh();
  }

  // ------------------------------------------------------------------ the dashboard page

  const D = {
    uid: "", saved: null, doc: null, panels: new Map(), editing: false, dirty: false,
    range: { range: "6h" }, step: "", vars: {}, varOptions: {}, lookedUp: {}, lookupSeq: {}, lookupAt: 0,
    refresh: "off", timer: 0, liveTimer: 0,
    lastRefreshAt: 0, pendingWhileHidden: false, streamDown: false, editingPanel: null,
  };

  async function dashboardPage() {
    D.uid = document.body.dataset.uid;
    T.dashboard = D;
    setupTheme("light", () => redrawAll());
    plotlyReady.catch((e) => notify("error", `The charting library did not load (${e.message}): charts cannot be drawn.`));
    let doc;
    try {
      doc = await api(`/api/v1/dashboards/${enc(D.uid)}`);
    } catch (e) {
      $(".controls").hidden = true;
      $("#live").hidden = true;
      const message = e.status === 404 ? `There is no dashboard "${D.uid}".` : `Could not load the dashboard: ${e.message}`;
      $("#grid").replaceChildren(h("p", { class: "notice", "data-kind": "error", role: "alert" }, message, " ", h("a", { href: "/", text: "All dashboards" })));
      document.body.dataset.ready = "1";
      return;
    }
    D.saved = clone(doc);
    D.doc = clone(doc);
    setTitle();
    const stored = storage.get(THEME_KEY);
    if (!stored && doc.theme) setupTheme(doc.theme, () => redrawAll());
    readUrlState();
    setupRange();
    renderVariables();
    setupRefresh();
    setupEditor();
    setupExport();
    setupImport($("#import-file"), null);
    setupPopovers();
    renderGrid();
    loadAll("initial", true);
    if (!(D.doc.panels || []).length) markReady();
    openStream();
    loadAlerts();
    if (new URLSearchParams(window.location.search).get("edit") === "1") setEditing(true);
    window.addEventListener("beforeunload", (event) => {
      if (D.dirty) { event.preventDefault(); event.returnValue = ""; }
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && D.pendingWhileHidden) { D.pendingWhileHidden = false; loadAll("visible"); }
    });
  }

  function setTitle() {
    $("#dash-title").textContent = D.doc.title;
    document.title = `${D.doc.title} · trm-otel`;
  }

  // --- state in the URL: ?range=6h | ?from=..&to=.., &var-NAME=value, &refresh=30s|off

  function currentOf(variable) {
    if (variable.current === undefined || variable.current === null) {
      if (variable.include_all) return [ALL];
      return variable.values && variable.values.length ? [variable.values[0]] : [];
    }
    return Array.isArray(variable.current) ? variable.current.slice() : [variable.current];
  }

  function readUrlState() {
    const q = new URLSearchParams(window.location.search);
    const time = D.doc.time || { from: "now-6h", to: "now" };
    if (q.get("from") || q.get("to")) {
      D.range = { from: q.get("from") || time.from, to: q.get("to") || "now" };
    } else if (q.get("range")) {
      D.range = { range: q.get("range") };
    } else {
      const relative = /^now-([0-9]+[smhdw])$/.exec(time.from || "");
      D.range = relative && time.to === "now" ? { range: relative[1] } : { from: time.from, to: time.to };
    }
    for (const variable of D.doc.variables || []) {
      const chosen = q.getAll(`var-${variable.name}`);
      D.vars[variable.name] = chosen.length ? chosen : currentOf(variable);
    }
    D.step = q.get("step") || ""; // optional: the API then evaluates at this step instead of its automatic one
    const refresh = q.get("refresh");
    D.refresh = refresh !== null ? refresh : D.doc.refresh || "off";
    if (!durationMs(D.refresh)) D.refresh = "off";
  }

  function dataQuery() {
    const q = new URLSearchParams();
    if (D.range.range) q.set("range", D.range.range);
    else { q.set("from", D.range.from); q.set("to", D.range.to); }
    if (D.step) q.set("step", D.step);
    for (const [name, values] of Object.entries(D.vars)) for (const value of values) q.append(`var-${name}`, value);
    return q;
  }

  function writeUrlState() {
    const q = dataQuery();
    if (D.refresh !== (D.doc.refresh || "off")) q.set("refresh", D.refresh);
    if (D.editing) q.set("edit", "1");
    window.history.replaceState(null, "", `${window.location.pathname}?${q}`);
  }

  // --- time range

  function setupRange() {
    const presets = $("#range-presets");
    presets.replaceChildren(...PRESETS.map((name) => h("button", {
      type: "button", "data-range": name, text: name, "aria-label": `Last ${name}`,
      onclick: () => setRange({ range: name }),
    })));
    const form = $("#range-form");
    const error = $(".form-error", form);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const from = form.elements.from.value.trim();
      const to = form.elements.to.value.trim() || "now";
      const bad = [from, to].filter((v) => !looksLikeTime(v));
      if (bad.length) {
        error.textContent = `Not a time: ${bad.map((v) => JSON.stringify(v)).join(", ")}. Use now, now-30m, now-2d, now/d or an ISO time such as 2025-11-30T04:20:00Z.`;
        error.hidden = false;
        return;
      }
      error.hidden = true;
      $("#custom-range").open = false;
      setRange({ from, to });
    });
    showRange();
  }

  function showRange() {
    for (const button of $$("#range-presets button")) button.setAttribute("aria-pressed", String(button.dataset.range === D.range.range));
    const custom = $("#custom-range");
    const form = $("#range-form");
    custom.classList.toggle("active", !D.range.range);
    $("summary", custom).textContent = D.range.range ? "Custom" : `${D.range.from} → ${D.range.to}`;
    form.elements.from.value = D.range.range ? `now-${D.range.range}` : D.range.from;
    form.elements.to.value = D.range.range ? "now" : D.range.to;
  }

  function setRange(range) {
    D.range = range;
    showRange();
    writeUrlState();
    loadAll("range", true);
  }

  // --- variables
  //
  // label_values() variables are filled from GET /api/v1/label/{label}/values (match[] = the
  // variable's selector, other variables' choices substituted in). Only when that lookup fails
  // do they fall back to the labels of the series panels return (and /api/v1/services).

  const LOOKUP_EVERY_MS = 30000; // live refreshes look the values up again at most this often
  const REF = String.raw`\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))`;
  /** Every $name / ${name} in `text` (match objects: [1] or [2] is the name). */
  const refsIn = (text) => [...text.matchAll(new RegExp(REF, "g"))];

  /** {selector (text or null), label} of a label_values(...) variable; null for any other. */
  function labelQuery(variable) {
    const found = /^\s*label_values\s*\(([\s\S]*)\)\s*$/.exec(variable.query || "");
    if (!found) return null;
    const args = found[1];
    const comma = args.lastIndexOf(",");
    const label = args.slice(comma + 1).trim().replace(/^"|"$/g, "");
    const selector = comma >= 0 ? args.slice(0, comma).trim() : "";
    return label ? { selector: selector || null, label } : null;
  }

  function variableLabel(variable) {
    const query = labelQuery(variable);
    return query ? query.label : null;
  }

  /** The values variable `name` stands for now: a list, null for "all" without a known list, undefined if unknown. */
  function chosenValues(name) {
    const variable = (D.doc.variables || []).find((v) => v.name === name);
    if (!variable) return undefined;
    const chosen = D.vars[name] || [];
    if (chosen.includes(ALL)) return variable.values && variable.values.length ? variable.values.slice() : null;
    return chosen;
  }

  const regexEscape = (value) => value.replace(/[\\.^$|?*+()[\]{}]/g, "\\$&");
  const stringEscape = (value, quote) => (quote === "`" ? value
    : value.replace(/\\/g, "\\\\").replace(new RegExp(quote, "g"), "\\" + quote).replace(/\n/g, "\\n"));

  /** A string's content with its references replaced, and the matcher operator it needs; null if it cannot be. */
  function substituteString(body, quote, op) {
    const refs = refsIn(body);
    if (!refs.length) return { body, op };
    const whole = refs.length === 1 && refs[0].index === 0 && refs[0][0].length === body.length;
    let regex = op === "=~" || op === "!~";
    let newOp = op;
    let out = "";
    let pos = 0;
    for (const ref of refs) {
      const values = chosenValues(ref[1] || ref[2]);
      if (values === undefined || (values !== null && !values.length)) return null;
      const several = values === null || values.length > 1;
      if (!regex && several) {
        if (!whole || quote === "`" || !op) return null;
        regex = true;
        newOp = op === "!=" ? "!~" : "=~";
      }
      let text;
      if (!regex) text = values[0];
      else if (values === null) text = ".*";
      else if (values.length === 1) text = regexEscape(values[0]);
      else text = whole ? values.map(regexEscape).join("|") : `(?:${values.map(regexEscape).join("|")})`;
      if (quote === "`" && text.includes("`")) return null;
      out += body.slice(pos, ref.index) + stringEscape(text, quote);
      pos = ref.index + ref[0].length;
    }
    return { body: out + body.slice(pos), op: newOp };
  }

  /** `text` with $name / ${name} replaced by the variables' choices, as the server substitutes them; null if it cannot be. */
  function substituteVariables(text) {
    let out = "";
    let i = 0;
    while (i < text.length) {
      const c = text[i];
      if (c === '"' || c === "'" || c === "`") {
        let j = i + 1;
        while (j < text.length && text[j] !== c) j += text[j] === "\\" && c !== "`" ? 2 : 1;
        const before = out.replace(/\s+$/, "");
        const op = ["=~", "!~", "!=", "="].find((o) => before.endsWith(o)) || null;
        const done = substituteString(text.slice(i + 1, j), c, op);
        if (done === null) return null;
        if (done.op !== op) out = before.slice(0, before.length - op.length) + done.op + out.slice(before.length);
        out += c + done.body + c;
        i = j + 1;
        continue;
      }
      if (c === "$") {
        const ref = new RegExp(REF, "y");
        ref.lastIndex = i;
        const found = ref.exec(text);
        if (found) {
          const values = chosenValues(found[1] || found[2]);
          if (!values || values.length !== 1) return null;
          out += values[0];
          i += found[0].length;
          continue;
        }
      }
      out += c;
      i += 1;
    }
    return out;
  }

  function optionsOf(variable) {
    const options = [];
    const add = (value) => { if (value !== ALL && !options.includes(value)) options.push(value); };
    (variable.values || []).forEach(add);
    (variable.options || []).forEach((o) => add(typeof o === "string" ? o : o.value));
    const found = D.lookedUp[variable.name] || D.varOptions[variable.name] || [];
    Array.from(found).sort().forEach(add);
    (D.vars[variable.name] || []).forEach(add);
    return options;
  }

  /** One variable's control: a select, or for multi variables a checkbox popover. */
  function variableNode(variable) {
    const label = variable.label || variable.name;
    const chosen = D.vars[variable.name] || [];
    const options = optionsOf(variable);
    const signature = JSON.stringify([options, chosen]);
    if (variable.multi) {
      const summary = chosen.includes(ALL) || !chosen.length ? "All" : chosen.join(", ");
      const boxes = [];
      const pick = (event) => {
        // "All" and single values exclude each other: the box just changed decides which one stays.
        const changed = event.target;
        let values = boxes.filter((b) => b.checked).map((b) => b.value);
        if (changed.value === ALL && changed.checked) values = [ALL];
        else values = values.filter((v) => v !== ALL);
        if (!values.length && variable.include_all) values = [ALL];
        setVariable(variable.name, values);
      };
      if (variable.include_all) boxes.push(h("input", { type: "checkbox", value: ALL, checked: chosen.includes(ALL), onchange: pick }));
      for (const option of options) boxes.push(h("input", { type: "checkbox", value: option, checked: chosen.includes(option), onchange: pick }));
      return h("details", { class: "var-multi", "data-variable": variable.name, "data-options": signature },
        h("summary", { "aria-label": `${label}: ${summary}` }, h("span", { class: "muted", text: `${label}: ` }), summary),
        h("div", { class: "popover", role: "group", "aria-label": label },
          boxes.map((b) => h("label", {}, b, b.value === ALL ? "All" : b.value)),
          options.length ? null : h("span", { class: "muted", text: "No values seen yet" })));
    }
    const select = h("select", {
      name: `var-${variable.name}`,
      onchange: () => setVariable(variable.name, [select.value]),
    },
    variable.include_all ? h("option", { value: ALL, text: "All" }) : null,
    options.map((option) => h("option", { value: option, text: option })));
    select.value = chosen[0] !== undefined ? chosen[0] : variable.include_all ? ALL : options[0] || "";
    return h("label", { "data-variable": variable.name, "data-options": signature }, label, select);
  }

  /**
   * Draw the variables. `soft` (new options arrived): redraw only the controls whose options
   * changed, keeping an open popover open and the focus where it was; a focused select is
   * redrawn once it loses focus (redrawing it would close its list under the viewer).
   */
  function renderVariables(soft) {
    const box = $("#variables");
    const variables = D.doc.variables || [];
    if (!soft) {
      box.replaceChildren(...variables.map(variableNode));
      return;
    }
    for (const variable of variables) {
      const old = $$("[data-variable]", box).find((el) => el.dataset.variable === variable.name);
      const node = variableNode(variable);
      if (!old) { box.append(node); continue; }
      if (old.dataset.options === node.dataset.options) continue;
      const focused = old.contains(document.activeElement) ? document.activeElement : null;
      if (focused && focused.tagName === "SELECT") {
        focused.addEventListener("blur", () => renderVariables(true), { once: true });
        continue;
      }
      if (old.tagName === "DETAILS" && old.open) node.open = true;
      old.replaceWith(node);
      const same = focused && $$("input", node).find((input) => input.value === focused.value);
      if (same) same.focus();
    }
  }

  function setVariable(name, values) {
    D.vars[name] = values;
    writeUrlState();
    renderVariables();
    const open = $(`details[data-variable="${name}"]`);
    if (open) open.open = true;
    loadAll("variable", true);
    // variables whose selector names this one list other values now
    lookupVariables((D.doc.variables || []).filter((v) => {
      const query = labelQuery(v);
      return v.name !== name && query && query.selector && refsIn(query.selector).some((r) => (r[1] || r[2]) === name);
    }));
  }

  /** Look the values of label_values() variables up (all of them by default) on the server. */
  function lookupVariables(variables) {
    variables = (variables || D.doc.variables || []).filter(labelQuery);
    if (!variables.length) return Promise.resolve();
    D.lookupAt = Date.now();
    return Promise.all(variables.map(lookupVariable));
  }

  async function lookupVariable(variable) {
    const { selector, label } = labelQuery(variable);
    const seq = (D.lookupSeq[variable.name] = (D.lookupSeq[variable.name] || 0) + 1);
    const q = new URLSearchParams();
    const match = selector === null ? null : substituteVariables(selector);
    let url = null;
    let failure = null;
    if (selector !== null && match === null) {
      failure = `cannot substitute the variables of ${selector}`;
    } else {
      if (match !== null) q.append("match[]", match);
      url = `/api/v1/label/${enc(label)}/values${match !== null ? `?${q}` : ""}`;
      try {
        const answer = await api(url);
        if (seq !== D.lookupSeq[variable.name]) return;
        D.lookedUp[variable.name] = new Set(answer.data || []);
      } catch (e) {
        failure = e.message;
      }
    }
    if (seq !== D.lookupSeq[variable.name]) return;
    T.lookups.push({ variable: variable.name, url, ok: !failure, error: failure });
    if (failure) {
      delete D.lookedUp[variable.name];
      if (label === "service.name") discoverServices([variable]);
    }
    renderVariables(true);
  }

  /** Fallback: values of label_values() variables whose lookup failed, from the labels of the series panels return. */
  function collectOptions(answer) {
    let added = false;
    for (const variable of D.doc.variables || []) {
      const label = variableLabel(variable);
      if (!label) continue;
      const seen = D.varOptions[variable.name] || (D.varOptions[variable.name] = new Set());
      for (const s of answer.series || []) {
        const value = (s.labels || {})[label];
        if (value !== undefined && value !== "" && !seen.has(value)) {
          seen.add(value);
          if (!D.lookedUp[variable.name]) added = true; // else the server's list is what is shown
        }
      }
    }
    if (added) renderVariables(true);
  }

  async function discoverServices(wanted) {
    try {
      const answer = await api("/api/v1/services");
      for (const variable of wanted) {
        const seen = D.varOptions[variable.name] || (D.varOptions[variable.name] = new Set());
        for (const service of answer.services || []) if (service.name) seen.add(service.name);
      }
      renderVariables(true);
    } catch (e) { /* the list then comes from the panels' series */ }
  }

  // --- alerts: a compact summary of the tenant's active alerts, kept current by the event stream

  const ALERT_ORDER = { firing: 0, pending: 1, suppressed: 2 };
  const ALERT_STATE_TEXT = { firing: "firing", pending: "pending", suppressed: "silenced" };

  /** The stream's summary shape ({firing, pending, suppressed, alerts, truncated}) of a GET /api/v1/alerts list. */
  function alertSummary(alerts) {
    const active = alerts.filter((a) => a.state in ALERT_ORDER).map((a) => ({
      fingerprint: a.fingerprint, alertname: (a.labels || {}).alertname || "", rule: a.rule, labels: a.labels || {},
      state: a.state, since: a.state === "pending" ? a.activeAt : a.firedAt || a.activeAt,
    }));
    active.sort((a, b) => ALERT_ORDER[a.state] - ALERT_ORDER[b.state] || String(a.since).localeCompare(String(b.since))
      || a.alertname.localeCompare(b.alertname));
    const count = (state) => active.filter((a) => a.state === state).length;
    return { firing: count("firing"), pending: count("pending"), suppressed: count("suppressed"), alerts: active, truncated: 0 };
  }

  /** The summary as loaded now: what the stream sends after this only changes it. */
  async function loadAlerts() {
    const seq = (D.alertsSeq = (D.alertsSeq || 0) + 1);
    try {
      const answer = await api("/api/v1/alerts");
      if (seq === D.alertsSeq) showAlerts(alertSummary(answer.alerts || []));
    } catch (e) {
      if (!D.alerts) $("#alerts").hidden = true; // no alerting on this server (or not for this token)
    }
  }

  function showAlerts(summary) {
    D.alertsSeq = (D.alertsSeq || 0) + 1; // a list still loading is older than this
    D.alerts = summary;
    T.alerts = summary;
    const box = $("#alerts");
    const firing = summary.firing || 0;
    const pending = summary.pending || 0;
    const silenced = summary.suppressed || 0;
    const parts = [`${firing} firing`, `${pending} pending`];
    if (silenced) parts.push(`${silenced} silenced`);
    box.hidden = false;
    box.dataset.state = firing ? "firing" : pending ? "pending" : "ok";
    $("#alerts-count").textContent = parts.join(" · ");
    const status = `Alerts: ${parts.join(", ")}`;
    const live = $("#alerts-status");
    if (live.dataset.said !== undefined && live.dataset.said !== status) live.textContent = status; // changes only
    live.dataset.said = status;
    const alerts = summary.alerts || [];
    $("#alert-rows").replaceChildren(...alerts.map((a) => h("tr", { "data-fingerprint": a.fingerprint, "data-state": a.state },
      h("th", { scope: "row", text: a.alertname || a.rule || "alert" }),
      h("td", {}, Object.entries(a.labels || {}).filter(([k]) => k !== "alertname")
        .map(([k, v]) => h("span", { class: "tag", text: `${k}=${v}` }))),
      h("td", {}, h("span", { class: "alert-state", "data-state": a.state, text: ALERT_STATE_TEXT[a.state] || a.state })),
      h("td", {}, h("time", { datetime: a.since, text: formatTime(a.since) })))));
    $("#alert-table").hidden = !alerts.length;
    $("#alerts-empty").hidden = alerts.length > 0;
    const more = $("#alerts-more");
    more.hidden = !summary.truncated;
    more.textContent = summary.truncated ? `and ${summary.truncated} more (GET /api/v1/alerts lists them all)` : "";
  }

  // --- refresh: the picker, a timer, and the live stream

  function setupRefresh() {
    const select = $("#refresh");
    if (![...select.options].some((o) => o.value === D.refresh)) select.append(h("option", { value: D.refresh, text: D.refresh }));
    select.value = D.refresh;
    select.onchange = () => {
      D.refresh = select.value;
      writeUrlState();
      startTimer();
    };
    startTimer();
  }

  function startTimer() {
    clearInterval(D.timer);
    D.timer = 0;
    const every = durationMs(D.refresh);
    if (!every) return;
    D.timer = setInterval(() => {
      if (document.hidden) { D.pendingWhileHidden = true; return; }
      if (Date.now() - D.lastRefreshAt < every / 2) return; // the stream just refreshed
      loadAll("refresh");
    }, every);
  }

  function scheduleLive(reason) {
    clearTimeout(D.liveTimer);
    D.liveTimer = setTimeout(() => {
      if (document.hidden) { D.pendingWhileHidden = true; return; }
      loadAll(reason);
    }, LIVE_DEBOUNCE_MS);
  }

  function openStream() {
    const badge = $("#live");
    const show = (state, text) => { badge.dataset.live = state; badge.textContent = text; };
    const handlers = {
      hello: () => {
        if (D.streamDown) { scheduleLive("reconnect"); loadAlerts(); } // alert changes may have been missed
        D.streamDown = false;
        show("live", "Live");
      },
      views: () => scheduleLive("views"),
      resync: () => { scheduleLive("resync"); loadAlerts(); },
      alerts: (data) => { if (data && typeof data === "object") showAlerts(data); },
    };
    const receive = (name, text) => {
      T.events[name] = (T.events[name] || 0) + 1;
      let data = null;
      try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
      if (handlers[name]) handlers[name](data);
    };
    const down = () => { D.streamDown = true; show("offline", "reconnecting…"); };
    const token = storage.get(TOKEN_KEY);
    if (!token && window.EventSource) {
      let delay = 2000;
      const connect = () => {
        const source = new EventSource("/api/v1/stream");
        for (const name of Object.keys(handlers)) source.addEventListener(name, (e) => { delay = 2000; receive(name, e.data); });
        source.onerror = () => {
          down();
          if (source.readyState === EventSource.CLOSED) { // refused (e.g. 503): retry ourselves, slower each time
            setTimeout(connect, delay);
            delay = Math.min(delay * 2, 60000);
          }
        };
        window.addEventListener("pagehide", () => source.close(), { once: true });
      };
      connect();
      return;
    }
    streamWithToken(token, receive, down); // EventSource cannot send an Authorization header
  }

  async function streamWithToken(token, receive, down) {
    let delay = 1000;
    for (;;) {
      try {
        const response = await fetch("/api/v1/stream", {
          headers: { Authorization: `Bearer ${token}`, Accept: "text/event-stream" }, cache: "no-store",
        });
        if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
        delay = 1000;
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n?/g, "\n");
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let name = "message";
            const data = [];
            for (const line of block.split("\n")) {
              if (line.startsWith("event:")) name = line.slice(6).trim();
              else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
            }
            if (data.length) receive(name, data.join("\n"));
          }
        }
      } catch (e) { /* reconnect below */ }
      down();
      await sleep(delay);
      delay = Math.min(delay * 2, 30000);
    }
  }

  // --- panels

  function byPosition(a, b) {
    return a.grid.y - b.grid.y || a.grid.x - b.grid.x;
  }

  function renderGrid() {
    const grid = $("#grid");
    const panels = (D.doc.panels || []).slice().sort(byPosition);
    const seen = new Set();
    panels.forEach((panel, index) => {
      let rec = D.panels.get(panel.id);
      if (!rec) {
        rec = createPanel(panel);
        D.panels.set(panel.id, rec);
      }
      rec.panel = panel;
      updatePanel(rec);
      if (grid.children[index] !== rec.el) grid.insertBefore(rec.el, grid.children[index] || null);
      seen.add(panel.id);
    });
    for (const [id, rec] of D.panels) {
      if (seen.has(id)) continue;
      rec.observer.disconnect();
      if (window.Plotly) window.Plotly.purge(rec.chart);
      rec.el.remove();
      D.panels.delete(id);
    }
    $("#empty").hidden = panels.length > 0;
  }

  function createPanel(panel) {
    const id = panel.id;
    const tool = (action, text, label) => h("button", { type: "button", class: "icon ghost", "data-action": action, text, "data-label": label });
    const rec = {
      panel, seq: 0, data: null, abort: null, again: false, loadedOnce: false, draft: false, stale: false, drawn: false,
      el: null, title: h("h2", { id: `panel-${id}-title` }), chart: h("div", { class: "chart" }),
      error: h("div", { class: "panel-error", role: "alert", hidden: true }),
      note: h("div", { class: "panel-note", hidden: true }),
    };
    rec.el = h("section", { class: "panel", "data-panel-id": id, "data-state": "loading", "aria-labelledby": `panel-${id}-title` },
      h("header", { class: "panel-head" },
        h("span", { class: "panel-status", "aria-hidden": "true" }),
        rec.title,
        h("div", { class: "panel-tools", role: "group", "aria-label": "Panel tools" },
          tool("left", "←", "Move %s left"), tool("up", "↑", "Move %s up"),
          tool("down", "↓", "Move %s down"), tool("right", "→", "Move %s right"),
          tool("edit", "Edit", "Edit %s"), tool("remove", "Remove", "Remove %s"))),
      h("div", { class: "panel-body" }, rec.chart, rec.error, rec.note));
    let resizeTimer = 0;
    rec.observer = new ResizeObserver(() => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => { if (rec.drawn && rec.chart.isConnected) window.Plotly.Plots.resize(rec.chart); }, 60);
    });
    rec.observer.observe(rec.chart);
    return rec;
  }

  function updatePanel(rec) {
    const { panel, el } = rec;
    const grid = panel.grid;
    el.style.setProperty("--col", grid.x + 1);
    el.style.setProperty("--row", grid.y + 1);
    el.style.setProperty("--w", grid.w);
    el.style.setProperty("--h", grid.h);
    el.dataset.type = panel.type;
    const title = panel.title || "Untitled panel";
    rec.title.textContent = title;
    rec.chart.setAttribute("role", "img");
    rec.chart.setAttribute("aria-label", `${title}: ${panel.type} chart`);
    for (const button of $$("button[data-action]", el)) button.setAttribute("aria-label", button.dataset.label.replace("%s", title));
    const note = rec.draft ? "Not saved yet: save the dashboard to load this panel."
      : rec.stale ? "Changed: save the dashboard to load the new queries." : "";
    rec.note.textContent = note;
    rec.note.hidden = !note;
  }

  function markReady() {
    if (document.body.dataset.ready === "1") return;
    document.body.dataset.ready = "1";
    T.readyAt = performance.now();
  }

  function finishFirstLoad(rec) {
    if (rec.loadedOnce) return;
    rec.loadedOnce = true;
    for (const other of D.panels.values()) if (!other.loadedOnce) return;
    markReady();
  }

  /** Refetch every panel; `force` aborts requests in flight (the range or a variable changed). */
  function loadAll(reason, force) {
    D.lastRefreshAt = Date.now();
    for (const rec of D.panels.values()) loadPanel(rec, reason, force);
    // variable values: at load, and again on later refreshes (not too often: new services are rare)
    if (reason === "initial" || (reason !== "variable" && Date.now() - D.lookupAt >= LOOKUP_EVERY_MS)) lookupVariables();
  }

  async function loadPanel(rec, reason, force) {
    if (rec.draft) {
      rec.el.dataset.state = "ready";
      finishFirstLoad(rec);
      return;
    }
    if (rec.abort) {
      if (!force) { rec.again = true; return; } // a refresh while one is in flight: once more afterwards
      rec.abort.abort();
    }
    const controller = new AbortController();
    rec.abort = controller;
    rec.again = false;
    const seq = ++rec.seq;
    const id = rec.panel.id;
    const url = `/api/v1/dashboards/${enc(D.uid)}/panels/${id}/data?${dataQuery()}`;
    T.fetches[id] = (T.fetches[id] || 0) + 1;
    T.requests.push({ panel: id, url, reason, at: Math.round(performance.now()) });
    if (T.requests.length > 2000) T.requests.splice(0, 1000);
    rec.el.dataset.state = "loading";
    rec.el.setAttribute("aria-busy", "true");
    let answer = null;
    let failure = null;
    try {
      answer = await api(url, { signal: controller.signal });
      await plotlyReady;
    } catch (e) {
      if (e.name === "AbortError") return;
      failure = e;
    }
    if (seq !== rec.seq) return;
    rec.abort = null;
    if (!failure && answer && answer.error) failure = new ApiError(200, answer);
    if (!failure) {
      rec.data = answer;
      try {
        await draw(rec);
      } catch (e) {
        failure = new Error(`could not draw the chart: ${e.message}`);
      }
      collectOptions(answer);
    }
    if (seq !== rec.seq) return;
    showError(rec, failure);
    rec.el.removeAttribute("aria-busy");
    rec.el.dataset.state = failure ? "error" : "ready";
    finishFirstLoad(rec);
    if (rec.again) loadPanel(rec, reason, false);
  }

  function showError(rec, failure) {
    if (!failure) {
      rec.error.hidden = true;
      rec.error.replaceChildren();
      return;
    }
    const text = failure.status === 404 ? "This panel is not in the saved dashboard." : failure.message;
    rec.error.replaceChildren(...problemsNode("Query failed", { message: text, body: failure.body }));
    rec.error.hidden = false;
  }

  async function draw(rec) {
    if (!rec.data || !window.Plotly) return;
    const fig = figure(rec.panel, rec.data);
    await window.Plotly.react(rec.chart, fig.data, fig.layout, PLOT_CONFIG);
    rec.drawn = true;
    rec.timeChart = TIME_TYPES.has(rec.data.type || rec.panel.type) && fig.data.length > 0;
    if (!rec.hoverBound) {
      rec.hoverBound = true;
      rec.chart.on("plotly_hover", (event) => {
        const point = event.points && event.points[0];
        if (rec.timeChart && point && point.x !== undefined) crosshair(rec.panel.id, point.x);
      });
      rec.chart.on("plotly_unhover", () => crosshair(rec.panel.id, null));
      rec.chart.on("plotly_click", (event) => {
        const point = (event.points || []).find((p) => p.data && p.data.meta === "exemplars");
        if (point) openExemplar(rec.panel, point);
      });
    }
  }

  function redrawAll() {
    for (const rec of D.panels.values()) if (rec.data) draw(rec).catch(() => {});
  }

  // Shared crosshair: hovering one time chart draws a line at that time on the others.
  let crossPending = null;
  let crossFrame = 0;
  function crosshair(source, x) {
    crossPending = { source, x };
    if (crossFrame) return;
    crossFrame = requestAnimationFrame(() => {
      crossFrame = 0;
      const { source: from, x: at } = crossPending;
      T.crosshair = at;
      for (const rec of D.panels.values()) {
        if (rec.panel.id === from || !rec.drawn || !rec.timeChart) continue;
        const had = (rec.chart.layout && rec.chart.layout.shapes) || [];
        if (at === null && !had.length) continue;
        const shapes = at === null ? [] : [{
          type: "line", xref: "x", yref: "paper", x0: at, x1: at, y0: 0, y1: 1,
          line: { color: THEMES[currentTheme()].crosshair, width: 1, dash: "dot" },
        }];
        window.Plotly.relayout(rec.chart, { shapes });
      }
    });
  }

  // --- editor

  function setEditing(on) {
    D.editing = on;
    document.body.classList.toggle("editing", on);
    $("#edit-toggle").setAttribute("aria-pressed", String(on));
    $("#edit-bar").hidden = !on;
    writeUrlState();
  }

  function markDirty() {
    D.dirty = true;
    $("#dirty").hidden = false;
  }

  function overlaps(a, b) {
    return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
  }

  /** Resolve overlaps (`first` keeps its place, what it covers moves down), then close gaps upwards. */
  function settle(first) {
    const panels = D.doc.panels;
    const order = panels.filter((p) => p !== first).sort(byPosition);
    if (first) order.unshift(first);
    const placed = [];
    for (const panel of order) {
      for (;;) {
        const blocking = placed.filter((p) => overlaps(p.grid, panel.grid));
        if (!blocking.length) break;
        panel.grid.y = Math.max(...blocking.map((p) => p.grid.y + p.grid.h));
      }
      placed.push(panel);
    }
    const done = [];
    for (const panel of panels.slice().sort(byPosition)) {
      const g = panel.grid;
      const above = done.filter((p) => p.grid.x < g.x + g.w && g.x < p.grid.x + p.grid.w).map((p) => p.grid.y + p.grid.h);
      g.y = above.length ? Math.max(...above) : 0;
      done.push(panel);
    }
  }

  function movePanel(panel, direction) {
    const g = panel.grid;
    const beside = (p) => p !== panel && p.grid.x < g.x + g.w && g.x < p.grid.x + p.grid.w;
    if (direction === "left" || direction === "right") {
      const x = Math.min(Math.max(g.x + (direction === "left" ? -1 : 1), 0), COLUMNS - g.w);
      if (x === g.x) return false;
      g.x = x;
    } else if (direction === "up") {
      const above = D.doc.panels.filter((p) => beside(p) && p.grid.y + p.grid.h <= g.y);
      if (!above.length) return false;
      const nearest = Math.max(...above.map((p) => p.grid.y + p.grid.h));
      g.y = Math.min(...above.filter((p) => p.grid.y + p.grid.h === nearest).map((p) => p.grid.y));
    } else {
      const below = D.doc.panels.filter((p) => beside(p) && p.grid.y >= g.y + g.h);
      if (!below.length) return false;
      const next = Math.min(...below.map((p) => p.grid.y));
      const neighbours = below.filter((p) => p.grid.y === next);
      g.y = Math.max(...neighbours.map((p) => p.grid.y + p.grid.h));
    }
    settle(panel);
    return true;
  }

  function setupEditor() {
    $("#edit-toggle").onclick = () => setEditing(!D.editing);
    $("#add-panel").onclick = addPanel;
    $("#save").onclick = () => save(null);
    $("#discard").onclick = discard;
    $("#grid").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      if (!button) return;
      const id = Number(button.closest("[data-panel-id]").dataset.panelId);
      const panel = D.doc.panels.find((p) => p.id === id);
      if (!panel) return;
      const action = button.dataset.action;
      if (action === "edit") { openPanelEditor(panel, false); return; }
      if (action === "remove") {
        D.doc.panels = D.doc.panels.filter((p) => p !== panel);
        settle(null);
      } else if (!movePanel(panel, action)) {
        return;
      }
      markDirty();
      renderGrid();
      if (action !== "remove") button.focus();
    });
    const select = $("#pf-type");
    select.replaceChildren(...PANEL_TYPES.map((t) => h("option", { value: t, text: t })));
    $("#pf-add-target").onclick = () => addTargetRow({ expr: "", legend: "" }, true);
    const dialog = $("#panel-dialog");
    $("[data-close]", dialog).onclick = () => dialog.close("cancel");
    dialog.addEventListener("close", () => {
      const editing = D.editingPanel;
      D.editingPanel = null;
      if (editing && editing.isNew && dialog.returnValue !== "apply") { // a new panel never applied: drop it
        D.doc.panels = D.doc.panels.filter((p) => p !== editing.panel);
        settle(null);
        renderGrid();
      }
    });
    $("#panel-form").addEventListener("submit", (event) => {
      event.preventDefault();
      if (applyPanelEditor()) dialog.close("apply");
    });
  }

  function addTargetRow(target, focus) {
    const list = $("#pf-targets");
    const n = list.children.length + 1;
    const expr = h("textarea", { name: "expr", rows: 2, spellcheck: "false", value: target.expr || "" });
    const legend = h("input", { name: "legend", value: target.legend || "", autocomplete: "off", placeholder: "{{service.name}}" });
    const row = h("li", {},
      h("div", { class: "fields" }, h("label", {}, `Query ${n}`, expr), h("label", {}, "Legend", legend)),
      h("button", { type: "button", class: "ghost danger", text: "Remove", "aria-label": `Remove query ${n}`, onclick: () => row.remove() }));
    list.append(row);
    if (focus) expr.focus();
  }

  function openPanelEditor(panel, isNew) {
    D.editingPanel = { panel, isNew };
    const form = $("#panel-form");
    $("#panel-dialog-title").textContent = isNew ? "New panel" : `Edit panel: ${panel.title || "Untitled"}`;
    form.elements.title.value = panel.title || "";
    form.elements.type.value = panel.type;
    form.elements.w.value = panel.grid.w;
    form.elements.h.value = panel.grid.h;
    form.elements.unit.value = (panel.options && panel.options.unit) || "";
    $("#pf-targets").replaceChildren();
    for (const target of panel.targets || []) addTargetRow(target, false);
    if (!(panel.targets || []).length) addTargetRow({ expr: "", legend: "" }, false);
    $(".form-error", form).hidden = true;
    $("#panel-dialog").returnValue = "";
    $("#panel-dialog").showModal();
    form.elements.title.focus();
  }

  function applyPanelEditor() {
    const { panel } = D.editingPanel;
    const form = $("#panel-form");
    const error = $(".form-error", form);
    const w = Number(form.elements.w.value);
    const hgt = Number(form.elements.h.value);
    const problems = [];
    if (!Number.isInteger(w) || w < 1 || w > COLUMNS) problems.push(`Width must be a whole number from 1 to ${COLUMNS}.`);
    if (!Number.isInteger(hgt) || hgt < 1 || hgt > 60) problems.push("Height must be a whole number from 1 to 60.");
    const targets = $$("#pf-targets li").map((row) => ({
      expr: $("textarea", row).value.trim(), legend: $("input", row).value.trim(),
    })).filter((t) => t.expr);
    if (problems.length) {
      error.textContent = problems.join(" ");
      error.hidden = false;
      return false;
    }
    const rec = D.panels.get(panel.id);
    const type = form.elements.type.value;
    const unit = form.elements.unit.value.trim();
    const queriesChanged = type !== panel.type || JSON.stringify(targets) !== JSON.stringify((panel.targets || []).map((t) => ({ expr: t.expr, legend: t.legend || "" })));
    panel.title = form.elements.title.value.trim();
    panel.type = type;
    panel.targets = targets;
    panel.options = Object.assign({}, panel.options);
    if (unit) panel.options.unit = unit;
    else delete panel.options.unit;
    panel.grid.w = w;
    panel.grid.h = hgt;
    panel.grid.x = Math.min(panel.grid.x, COLUMNS - w);
    settle(panel);
    if (rec && queriesChanged && !rec.draft) rec.stale = true;
    markDirty();
    renderGrid();
    if (rec && rec.data && !queriesChanged) draw(rec).catch(() => {});
    return true;
  }

  function addPanel() {
    const panels = D.doc.panels || (D.doc.panels = []);
    const id = panels.reduce((max, p) => Math.max(max, p.id), 0) + 1;
    const bottom = panels.reduce((max, p) => Math.max(max, p.grid.y + p.grid.h), 0);
    const panel = { id, title: "", type: "line", targets: [], grid: { x: 0, y: bottom, w: 6, h: 8 }, options: {} };
    panels.push(panel);
    settle(panel);
    renderGrid();
    const rec = D.panels.get(id);
    rec.draft = true;
    rec.loadedOnce = true;
    rec.el.dataset.state = "ready";
    updatePanel(rec);
    markDirty();
    openPanelEditor(panel, true);
  }

  function discard() {
    D.doc = clone(D.saved);
    for (const rec of D.panels.values()) { rec.stale = false; }
    renderGrid();
    for (const rec of D.panels.values()) {
      if (rec.data) draw(rec).catch(() => {});
      else loadPanel(rec, "discard", false); // a removed panel is back
    }
    D.dirty = false;
    $("#dirty").hidden = true;
    setTitle();
  }

  async function save(overwriteVersion) {
    const body = clone(D.doc);
    if (overwriteVersion !== null) body.version = overwriteVersion;
    const button = $("#save");
    button.disabled = true;
    try {
      const result = await api(`/api/v1/dashboards/${enc(D.uid)}`, { method: "PUT", body });
      D.doc.version = result.version;
      D.saved = clone(D.doc);
      D.dirty = false;
      $("#dirty").hidden = true;
      for (const rec of D.panels.values()) { rec.draft = false; rec.stale = false; updatePanel(rec); }
      notify("info", `Saved: version ${result.version}.`);
      loadAll("save", true);
    } catch (e) {
      if (e.status === 409) {
        const current = e.body.currentVersion;
        notify("error",
          `Not saved: someone else saved this dashboard while you were editing (it is at version ${current}; you started from version ${D.doc.version}). Your changes are still on this page.`,
          [
            { label: "Reload the saved version (drops your changes)", run: () => { D.dirty = false; window.location.reload(); } },
            { label: "Overwrite it with mine", run: () => save(current) },
          ]);
      } else {
        notify("error", problemsNode("Not saved", e));
      }
    } finally {
      button.disabled = false;
    }
  }

  // --- export and popovers

  function setupExport() {
    for (const button of $$("[data-export]")) {
      button.onclick = async () => {
        const format = button.dataset.export;
        $("#share-menu").open = false;
        try {
          const doc = await api(`/api/v1/dashboards/${enc(D.uid)}/export?format=${enc(format)}`);
          const name = `${D.uid}${format === "grafana" ? ".grafana" : ""}.json`;
          const url = URL.createObjectURL(new Blob([JSON.stringify(doc, null, 2)], { type: "application/json" }));
          const link = h("a", { href: url, download: name, hidden: true });
          document.body.append(link);
          link.click();
          link.remove();
          setTimeout(() => URL.revokeObjectURL(url), 5000);
          if (D.dirty) notify("warn", "Exported the saved version: your unsaved changes are not in the file.");
        } catch (e) {
          notify("error", problemsNode("Export failed", e));
        }
      };
    }
  }

  function setupPopovers() {
    const close = (except) => {
      for (const details of $$("details.custom-range[open], details.menu[open], details.var-multi[open], details.alerts[open]")) {
        if (details !== except) details.open = false;
      }
    };
    document.addEventListener("click", (event) => close(event.target.closest("details")));
    document.addEventListener("keydown", (event) => { if (event.key === "Escape") close(null); });
  }

  // ------------------------------------------------------------------ start

  const page = document.body.dataset.page;
  const start = page === "dashboard" ? dashboardPage : listPage;
  start().catch((e) => {
    notify("error", `The page failed: ${e.message}`);
    T.failure = String(e && e.stack ? e.stack : e);
  });
})();
