// Draws each chart of the page with uPlot: an element with data-chart
// names the <script type="application/json"> holding {x, series, ylabel}:
// x in Unix seconds, one value a month per series. data-zero starts the
// values' axis at zero. The legend shows the month under the cursor and
// its values, or nothing (a chart of several series keeps their names).
(function () {
  if (typeof uPlot === "undefined") return;
  const colors = ["#0969da", "#cf222e", "#1a7f37", "#9a6700", "#8250df", "#bc4c00", "#57606a"];
  // The axes in the page's colours (app.css), light or dark.
  const css = getComputedStyle(document.documentElement);
  const fg = css.getPropertyValue("--fg").trim() || "#1f2328", line = css.getPropertyValue("--line").trim() || "#d0d7de";
  const axis = { stroke: fg, grid: { stroke: line }, ticks: { stroke: line } };
  const month = v => v == null ? "" : new Date(v * 1000).toISOString().slice(0, 7);
  const number = v => v == null ? "" : v.toLocaleString("en-US", { maximumFractionDigits: 3 });
  document.querySelectorAll("[data-chart]").forEach(el => {
    const src = document.getElementById(el.dataset.chart);
    if (!src) return;
    const data = JSON.parse(src.textContent);
    el.classList.add("idle");
    el.classList.toggle("single", data.series.length === 1);
    const opts = {
      width: Math.min(el.clientWidth || 1000, 1100),
      height: data.height || 360,
      scales: {
        x: { time: true },
        y: "zero" in el.dataset ? { range: (u, min, max) => [0, max > 0 ? max * 1.05 : 1] } : {},
      },
      axes: [
        {
          ...axis,
          // One tick per month, thinned to fit: the data is monthly.
          splits: u => { const k = Math.max(1, Math.ceil(data.x.length / (u.width / 70))); return data.x.filter((_, i) => i % k === 0); },
          values: (u, vals) => vals.map(month),
        },
        { ...axis, label: data.ylabel || "", size: 80 },
      ],
      series: [{ label: "month", value: (u, v) => month(v) }]
        .concat(data.series.map((s, i) => ({ label: s.label, stroke: colors[i % colors.length], width: 2, spanGaps: false, value: (u, v) => number(v) }))),
      // Off the chart, the legend says nothing (app.css hides it).
      // data-y-min tells where the values' axis starts (the browser test reads it).
      hooks: {
        setLegend: [u => el.classList.toggle("idle", u.cursor.idx == null)],
        setScale: [(u, key) => { if (key === "y") el.dataset.yMin = u.scales.y.min; }],
      },
    };
    new uPlot(opts, [data.x].concat(data.series.map(s => s.values)), el);
  });
})();
