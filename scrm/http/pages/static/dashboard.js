/* The managers' 看板 (/h5/dashboard): filters, key figures, tables and Apache ECharts charts.
 *
 * Figures come from /h5/api/dashboard: each table's cells exactly as `scrm report` prints them, and the raw
 * numbers for the charts. Every text goes on the page with textContent (never innerHTML), charts draw on a
 * canvas with tooltips in rich-text mode (no HTML either), and ECharts is the copy the service itself serves
 * (/h5/static/vendor/echarts/), so nothing is fetched from anywhere else. */
(function () {
  "use strict";

  var page = JSON.parse(document.getElementById("page-data").textContent);
  var W = page.words;
  var app = document.getElementById("app");
  var charts = [];
  var state = { period: "this_month", department: "" };
  var COLORS = ["#07c160", "#3370ff", "#ff8800", "#f54a45", "#8f959e"];

  function fill(template, values) {
    return String(template).replace(/\{(\w+)\}/g, function (whole, key) {
      return Object.prototype.hasOwnProperty.call(values, key) ? String(values[key]) : whole;
    });
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function axisMoney(value) {
    return Math.abs(value) >= 10000 ? String(+(value / 10000).toFixed(1)) + "万" : String(value);
  }

  function loadScript(src) {
    return new Promise(function (resolve, reject) {
      if (window.echarts) { resolve(); return; }
      var script = document.createElement("script");
      script.src = src;
      script.onload = function () { resolve(); };
      script.onerror = function () { reject(new Error("echarts did not load")); };
      document.head.appendChild(script);
    });
  }

  function readLocation() {
    var query = new URLSearchParams(window.location.search);
    if (page.periods.indexOf(query.get("period")) >= 0) { state.period = query.get("period"); }
    if (/^[0-9]{1,18}$/.test(query.get("department") || "")) { state.department = query.get("department"); }
  }

  function writeLocation() {
    var query = new URLSearchParams();
    query.set("period", state.period);
    if (state.department) { query.set("department", state.department); }
    window.history.replaceState(null, "", window.location.pathname + "?" + query.toString());
  }

  function fetchFigures() {
    var query = new URLSearchParams({ period: state.period });
    if (state.department) { query.set("department", state.department); }
    return fetch("/h5/api/dashboard?" + query.toString(), {
      credentials: "same-origin", headers: { Accept: "application/json" }
    }).then(function (resp) {
      if (resp.status === 401) { window.location.reload(); return new Promise(function () {}); }
      return resp.json().then(function (body) {
        if (!resp.ok) { throw new Error(body.error || W.load_failed); }
        return body;
      });
    });
  }

  // -- building blocks ---------------------------------------------------------------------------------

  function select(id, label, options, value, onChange) {
    var wrap = el("div", "filter");
    var caption = el("label", null, label);
    caption.htmlFor = id;
    var box = el("select");
    box.id = id;
    options.forEach(function (option) {
      var item = el("option", null, option.text);
      item.value = option.value;
      item.selected = option.value === value;
      box.appendChild(item);
    });
    box.addEventListener("change", function () { onChange(box.value); });
    wrap.appendChild(caption);
    wrap.appendChild(box);
    return wrap;
  }

  function table(id, header, rows) {
    var scroller = el("div", "table-scroll");
    var grid = el("table", "figures");
    grid.id = id;
    var head = el("thead");
    var headRow = el("tr");
    header.forEach(function (cell, i) { headRow.appendChild(el("th", i ? "num" : null, cell)); });
    head.appendChild(headRow);
    var body = el("tbody");
    rows.forEach(function (row) {
      var line = el("tr");
      row.forEach(function (cell, i) { line.appendChild(el("td", i ? "num" : null, cell)); });
      body.appendChild(line);
    });
    grid.appendChild(head);
    grid.appendChild(body);
    scroller.appendChild(grid);
    return scroller;
  }

  function section(id, title) {
    var card = el("section", "card");
    card.id = id;
    card.appendChild(el("h2", null, title));
    return card;
  }

  function kpi(label, value, id) {
    var card = el("div", "kpi card");
    card.id = id;
    card.appendChild(el("div", "muted", label));
    card.appendChild(el("div", "kpi-value", value));
    return card;
  }

  // -- the page ---------------------------------------------------------------------------------------

  function render(data) {
    charts.forEach(function (c) { c.dispose(); });
    charts = [];
    app.replaceChildren();

    var head = el("header", "card head");
    head.appendChild(el("h1", null, W.title));
    var scope = el("p", "muted");
    scope.id = "scope";
    scope.textContent = data.scope.label + " · " + fill(W.period_range, { since: data.period.since, until: data.period.until })
      + " · " + fill(W.updated, { at: data.at_text });
    head.appendChild(scope);
    var filters = el("div", "filters");
    filters.appendChild(select("period", W.period, page.periods.map(function (p) { return { value: p, text: W[p] }; }),
      state.period, function (value) { state.period = value; refresh(); }));
    if (data.departments.length > 1 || state.department) {
      var options = [{ value: "", text: W.all_departments }].concat(data.departments.map(function (d) {
        return { value: String(d.id), text: d.name };
      }));
      filters.appendChild(select("department", W.department, options, state.department,
        function (value) { state.department = value; refresh(); }));
    }
    head.appendChild(filters);
    app.appendChild(head);

    var kpis = el("section", "kpis");
    kpis.appendChild(kpi(W.kpi_won, fill(W.kpi_won_value, { amount: data.funnel.won_amount_text,
      deals: data.funnel.won_deals }), "kpi-won"));
    kpis.appendChild(kpi(W.kpi_forecast, data.forecast.amount_text, "kpi-forecast"));
    kpis.appendChild(kpi(W.kpi_accuracy, data.forecast.last_month.accuracy_text || W.none, "kpi-accuracy"));
    app.appendChild(kpis);

    var grid = el("div", "sections");
    app.appendChild(grid);
    grid.appendChild(funnelSection(data.funnel));
    grid.appendChild(lossesSection(data.losses));
    grid.appendChild(trendSection(data.trend));
    grid.appendChild(attainmentSection(data.attainment));
    grid.appendChild(forecastSection(data.forecast));
  }

  function funnelSection(funnel) {
    var card = section("funnel", W.funnel_title);
    card.appendChild(el("p", "summary", funnel.summary));
    var stages = funnel.stages.map(function (s) { return s.stage; }).concat([W.funnel_won]);
    var reached = funnel.stages.map(function (s) { return s.reached; }).concat([funnel.cohort_won]);
    var holder = el("div");
    card.appendChild(holder);
    card.appendChild(table("funnel-table", funnel.header, funnel.rows));
    card.appendChild(el("p", "muted", W.funnel_note));
    chartInto(holder, "funnel-chart", {
      yAxis: { type: "category", data: stages, inverse: true },
      xAxis: { type: "value", minInterval: 1 },
      series: [{ name: W.funnel_reached, type: "bar", data: reached, label: { show: true, position: "right" } }]
    });
    return card;
  }

  function lossesSection(losses) {
    var card = section("losses", W.losses_title);
    card.appendChild(el("p", "summary", losses.title));
    if (!losses.deals) {
      card.appendChild(el("p", "muted", W.losses_none));
      return card;
    }
    var holder = el("div");
    card.appendChild(holder);
    card.appendChild(table("losses-table", losses.header, losses.rows));
    if (losses.reasons_text) { card.appendChild(el("p", "reasons", losses.reasons_text)); }
    chartInto(holder, "losses-chart", {
      xAxis: { type: "category", data: losses.stages.map(function (s) { return s.stage || W.losses_unknown; }) },
      yAxis: { type: "value", minInterval: 1 },
      series: [{ name: W.losses_deals, type: "bar", data: losses.stages.map(function (s) { return s.deals; }),
        itemStyle: { color: "#f54a45" }, label: { show: true, position: "top" } }]
    });
    return card;
  }

  function trendSection(trend) {
    var card = section("trend", W.trend_title);
    var holder = el("div");
    card.appendChild(holder);
    card.appendChild(table("trend-table", trend.header, trend.rows));
    chartInto(holder, "trend-chart", {
      legend: { top: 0, data: [W.trend_size, W.trend_cycle] },
      xAxis: { type: "category", data: trend.months.map(function (m) { return m.month.slice(2); }) },
      yAxis: [{ type: "value", axisLabel: { formatter: axisMoney } }, { type: "value", minInterval: 1 }],
      series: [
        { name: W.trend_size, type: "bar", data: trend.months.map(function (m) { return m.average_amount; }) },
        { name: W.trend_cycle, type: "line", yAxisIndex: 1, connectNulls: false,
          data: trend.months.map(function (m) { return m.median_cycle_days; }) }
      ]
    });
    return card;
  }

  function attainmentSection(attainment) {
    var card = section("attainment", W.attainment_title);
    card.appendChild(el("p", "summary", fill(W.attainment_month, { month: attainment.month })));
    var rows = attainment.departments.concat(attainment.reps);
    if (!rows.length) {
      card.appendChild(el("p", "muted", W.attainment_none));
      return card;
    }
    var holder = el("div");
    card.appendChild(holder);
    card.appendChild(table("attainment-table", attainment.header, attainment.rows));
    var names = rows.map(function (r) { return (r.kind === "department" ? W.department_prefix : "") + r.name; });
    chartInto(holder, "attainment-chart", {
      legend: { top: 0, data: [W.attainment_target, W.attainment_won] },
      yAxis: { type: "category", data: names, inverse: true },
      xAxis: { type: "value", axisLabel: { formatter: axisMoney } },
      series: [
        { name: W.attainment_target, type: "bar", data: rows.map(function (r) { return r.target; }),
          itemStyle: { color: "#c9cdd4" } },
        { name: W.attainment_won, type: "bar", data: rows.map(function (r) { return r.won_amount; }) }
      ]
    }, Math.max(200, 48 + rows.length * 44));
    return card;
  }

  function forecastSection(forecast) {
    var card = section("forecast", W.forecast_title);
    card.appendChild(el("p", "summary", forecast.summary));
    card.appendChild(el("p", "summary", forecast.review));
    var last = forecast.last_month;
    var holder = el("div");
    card.appendChild(holder);
    chartInto(holder, "forecast-chart", {
      legend: { top: 0, data: [W.forecast_forecast, W.forecast_actual] },
      xAxis: { type: "category", data: [last.month, forecast.month] },
      yAxis: { type: "value", axisLabel: { formatter: axisMoney } },
      series: [
        { name: W.forecast_forecast, type: "bar", data: [last.forecast_amount, forecast.amount],
          itemStyle: { color: "#3370ff" } },
        { name: W.forecast_actual, type: "bar", data: [last.won_amount, forecast.won_amount] }
      ]
    });
    return card;
  }

  function chartInto(holder, id, option, height) {
    holder.className = "chart-holder";
    if (height) { holder.dataset.height = String(height); }
    pending.push({ holder: holder, id: id, option: option, height: height });
  }

  var pending = [];

  function drawPending() {
    pending.forEach(function (p) {
      var box = el("div", "chart");
      box.id = p.id;
      if (p.height) { box.style.height = p.height + "px"; }
      p.holder.appendChild(box);
      var instance = window.echarts.init(box, null, { renderer: "canvas" });
      p.option.series.forEach(function (series) {
        if (series.type === "bar" && series.barMaxWidth === undefined) { series.barMaxWidth = 36; }
      });
      instance.setOption(Object.assign({
        animation: false, color: COLORS,
        grid: { left: 8, right: 24, top: 30, bottom: 8, containLabel: true },
        tooltip: { trigger: "axis", renderMode: "richText", confine: true }
      }, p.option));
      charts.push(instance);
    });
    pending = [];
  }

  function showError(message) {
    app.replaceChildren(el("div", "notice error", message));
  }

  function refresh() {
    writeLocation();
    return fetchFigures().then(function (data) {
      render(data);
      drawPending();
      document.body.dataset.ready = "true";
    }).catch(function (error) { showError(error.message || W.load_failed); });
  }

  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
  readLocation();
  app.replaceChildren(el("p", "muted", W.loading));
  loadScript(page.echarts).then(refresh, function () { showError(W.load_failed); });
}());
