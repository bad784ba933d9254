/* /taches: productivity (GET /api/stats/productivity): parcels per hour per agent, the
   average time of each step, and a small bar chart drawn as inline SVG (no CDN). */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { h } = Jauge;
  const box = Jauge.$("#productivite");
  if (!box) return;
  const SVG = "http://www.w3.org/2000/svg";
  const fmt = (n, digits) => Number(n).toLocaleString("fr-FR", { maximumFractionDigits: digits });
  const label = (step) => (Jauge.STEPS && Jauge.STEPS[step]) || step;

  function svg(tag, attrs, text) {
    const el = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function chart(points) {
    const width = 600, height = 140, bottom = 18, top = 12;
    const max = Math.max(1, ...points.map((p) => p.parcels));
    const step = width / Math.max(1, points.length);
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Colis enregistrés par " + (points.length === 24 ? "heure" : "jour") });
    const every = Math.ceil(points.length / 12);
    points.forEach((point, i) => {
      const barHeight = ((height - bottom - top) * point.parcels) / max;
      const x = i * step + step * 0.15;
      const bar = svg("rect", { class: "prod-bar", x, y: height - bottom - barHeight, width: step * 0.7, height: barHeight });
      bar.append(svg("title", {}, `${point.label} : ${point.parcels} colis`));
      root.append(bar);
      if (point.parcels) root.append(svg("text", { x: x + step * 0.35, y: height - bottom - barHeight - 2, "text-anchor": "middle" }, point.parcels));
      if (i % every === 0) root.append(svg("text", { x: x + step * 0.35, y: height - 4, "text-anchor": "middle" }, point.label.length > 5 ? point.label.slice(5) : point.label));
    });
    return root;
  }

  function steps(row) {
    if (!row.steps.length) return "–";
    return row.steps.map((s) => `${label(s.step)} : ${fmt(s.avg_s, 1)} s`).join(" · ");
  }

  function line(name, row) {
    return h("tr", { "data-agent": name },
      h("td", { text: name }), h("td", { text: fmt(row.parcels, 0) }), h("td", { text: fmt(row.hours, 0) }),
      h("td", { class: "per-hour", text: fmt(row.parcels_per_hour, 1) }), h("td", { class: "small", text: steps(row) }));
  }

  async function show(period) {
    for (const b of box.querySelectorAll("[data-period]")) b.setAttribute("aria-pressed", String(b.dataset.period === period));
    try {
      const data = await Jauge.api("GET", `/api/stats/productivity?period=${period}`);
      Jauge.$("#prod-chart").replaceChildren(chart(data.chart));
      const body = Jauge.$("#prod-agents tbody");
      body.replaceChildren();
      if (!data.agents.length) body.append(h("tr", {}, h("td", { colspan: 5, class: "muted", text: "Aucun colis enregistré sur la période." })));
      for (const row of data.agents) body.append(line(row.agent, row));
      if (data.agents.length > 1) body.append(line("Total", data.total));
      box.dataset.period = period;
    } catch (err) {
      Jauge.showError(err);
    }
  }

  for (const b of box.querySelectorAll("[data-period]")) b.addEventListener("click", () => show(b.dataset.period));
  show("today");
  // a parcel completed: the figures move (read again at most every 5 s)
  let timer = null;
  Jauge.live.on((frame) => {
    const job = frame.job;
    if (!job || job.status !== "completed" || !(job.kind || "").startsWith("colis.") || timer) return;
    timer = setTimeout(() => { timer = null; show(box.dataset.period || "today"); }, 5000);
  });
});
