// Draws monthly_sales per store with uPlot from the JSON the page embeds.
(function () {
  const el = document.getElementById("chart");
  const src = document.getElementById("chart-data");
  if (!el || !src || typeof uPlot === "undefined") return;
  const data = JSON.parse(src.textContent);
  const colors = ["#0969da", "#cf222e", "#1a7f37", "#9a6700", "#8250df", "#bc4c00", "#57606a"];
  const opts = {
    width: Math.min(el.clientWidth || 1000, 1100),
    height: 360,
    scales: { x: { time: true } },
    axes: [
      {
        // One tick per month, thinned to fit: the data is monthly.
        splits: u => { const k = Math.max(1, Math.ceil(data.x.length / (u.width / 70))); return data.x.filter((_, i) => i % k === 0); },
        values: (u, vals) => vals.map(v => new Date(v * 1000).toISOString().slice(0, 7)),
      },
      { label: "monthly sales (sum of value)", size: 80 },
    ],
    series: [{ label: "month", value: (u, v) => v == null ? "" : new Date(v * 1000).toISOString().slice(0, 7) }]
      .concat(data.series.map((s, i) => ({ label: s.label, stroke: colors[i % colors.length], width: 2, spanGaps: false }))),
  };
  new uPlot(opts, [data.x].concat(data.series.map(s => s.values)), el);
})();
