/* Tidings console: draws the charts (uPlot) and refreshes the live numbers. No build step. */
(function () {
  "use strict";
  var plots = {};

  /* Axis labels in UTC, 24-hour, with the date where a day starts. */
  function label(ts) {
    var iso = new Date(ts * 1000).toISOString();
    var time = iso.slice(11, 16);
    return time === "00:00" ? time + "\n" + iso.slice(5, 10) : time;
  }

  function toData(chart) {
    return [chart.x].concat(chart.series.map(function (s) { return s.values; }));
  }

  function draw(el) {
    var source = document.getElementById(el.dataset.chart);
    if (!source) return;
    var chart = JSON.parse(source.textContent);
    var width = Math.max(el.clientWidth, 320);
    var opts = {
      width: width,
      height: 240,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      scales: { y: { range: function (u, min, max) { return [0, Math.max(1, max * 1.1)]; } } },
      axes: [{ stroke: "#475569", grid: { stroke: "#e2e8f0" },
               values: function (u, splits) { return splits.map(label); } },
             { stroke: "#475569", grid: { stroke: "#e2e8f0" }, size: 50 }],
      series: [{ label: "UTC" }].concat(chart.series.map(function (s) {
        return { label: s.label, stroke: s.colour, width: 2, fill: s.colour + "1f",
                 points: { show: false } };
      })),
    };
    if (chart.series.length === 0) {
      el.classList.add("no-data");
      el.textContent = "No traffic in this window.";
      el.dataset.points = "0";
      return;
    }
    var plot = new uPlot(opts, toData(chart), el);
    plots[el.id] = { plot: plot, labels: chart.series.map(function (s) { return s.label; }) };
    mark(el, chart);
  }

  /* How many non-zero points the chart holds: for people (a title) and for the tests. */
  function mark(el, chart) {
    var points = 0;
    chart.series.forEach(function (s) { s.values.forEach(function (v) { if (v > 0) points++; }); });
    el.dataset.points = String(points);
  }

  function refresh(section) {
    fetch(section.dataset.live, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); return null; }
        return r.ok ? r.json() : null;
      })
      .then(function (live) {
        if (!live) return;
        Object.keys(live.queues).forEach(function (key) {
          var cell = section.querySelector('[data-queue="' + key + '"]');
          if (cell) cell.textContent = live.queues[key];
        });
        var asOf = document.getElementById("as-of");
        if (asOf) asOf.textContent = live.now.slice(0, 19).replace("T", " ");
        var hour = plots["chart-hour"];
        var el = document.getElementById("chart-hour");
        var sameSeries = hour && live.hour.series.length === hour.labels.length &&
          live.hour.series.every(function (s, i) { return s.label === hour.labels[i]; });
        if (sameSeries) {
          hour.plot.setData(toData(live.hour));
          mark(el, live.hour);
        } else if (el && live.hour.series.length) {
          /* A status appeared that the chart has no series for: draw it anew. */
          if (hour) hour.plot.destroy();
          el.textContent = "";
          el.classList.remove("no-data");
          document.getElementById("chart-hour-data").textContent = JSON.stringify(live.hour);
          draw(el);
        }
      })
      .catch(function () { /* the next tick tries again */ });
  }

  document.querySelectorAll(".plot[data-chart]").forEach(draw);
  var live = document.querySelector("[data-live]");
  if (live) setInterval(function () { refresh(live); }, 5000);
  window.addEventListener("resize", function () {
    Object.keys(plots).forEach(function (id) {
      var el = document.getElementById(id);
      plots[id].plot.setSize({ width: Math.max(el.clientWidth, 320), height: 240 });
    });
  });
})();
