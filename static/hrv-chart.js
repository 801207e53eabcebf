// Small HRV charts drawn on a canvas by the page itself, time on x (the last few
// minutes), RMSSD in ms on y: `HrvChart` draws one line per participant (the first
// `maxSeries` to report: a class of a thousand is followed through `GroupHrvChart`),
// `GroupHrvChart` the group's average with its min-max band from `hrv_summary` events.

const COLOURS = ["#0b5cad", "#b35c00", "#0f6b3a", "#a0006b", "#6b3fa0", "#8a6d00", "#a11a1a", "#00707a"];

const PAD = { left: 40, right: 10, top: 10, bottom: 22 };

/** What both charts share: the canvas sized to its box, the time window, the ms grid. */
class CanvasChart {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {number} windowMs  the most time the x axis spans
   * @param {number} maxPoints the most readings kept
   */
  constructor(canvas, windowMs, maxPoints) {
    this.canvas = canvas;
    this.windowMs = windowMs;
    this.maxPoints = maxPoints;
    this.scheduled = false;
    if (typeof ResizeObserver !== "undefined") new ResizeObserver(() => this.draw()).observe(canvas);
  }

  draw() {}

  /** Redraw once on the next frame, however many readings arrive before it. */
  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.draw();
    });
  }

  /**
   * x runs from the first reading (at most `windowMs` back, at least 20 s) to `latest`.
   * @param {number} earliest @param {number} latest
   */
  timeWindow(earliest, latest) {
    const span = Math.min(this.windowMs, Math.max(20000, latest - earliest + 2000));
    return { span, start: latest - span };
  }

  /**
   * Size the canvas to its box on this screen, clear it, draw the ms grid up to `top`
   * and `caption` under it; the plot's context and scales, or null where it cannot draw.
   * @param {number} start @param {number} span @param {number} top @param {string} caption
   */
  grid(start, span, top, caption) {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 300;
    const height = canvas.clientHeight || 180;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext("2d");
    if (!ctx) return null;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const plotW = Math.max(10, width - PAD.left - PAD.right);
    const plotH = Math.max(10, height - PAD.top - PAD.bottom);

    ctx.font = "12px system-ui, sans-serif";
    ctx.fillStyle = "#4a5360";
    ctx.strokeStyle = "#d5dae0";
    ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = PAD.top + plotH - (plotH * i) / 4;
      ctx.beginPath();
      ctx.moveTo(PAD.left, y);
      ctx.lineTo(PAD.left + plotW, y);
      ctx.stroke();
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      ctx.fillText(String(Math.round((top * i) / 4)), PAD.left - 6, y);
    }
    ctx.textAlign = "left";
    ctx.textBaseline = "alphabetic";
    ctx.fillText(caption, PAD.left, height - 5);
    return {
      ctx,
      x: (/** @type {number} */ t) => PAD.left + ((t - start) / span) * plotW,
      y: (/** @type {number} */ v) => PAD.top + plotH - (v / top) * plotH,
      /** @param {string} text  said in the middle of the plot @param {string} label  to screen readers */
      empty: (text, label) => {
        ctx.textAlign = "center";
        ctx.fillText(text, PAD.left + plotW / 2, PAD.top + plotH / 2);
        canvas.setAttribute("aria-label", label);
      },
    };
  }
}

export class HrvChart extends CanvasChart {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {HTMLElement | null} legend
   * @param {{windowMs?: number, maxPoints?: number, maxSeries?: number}} [options]
   */
  constructor(canvas, legend, options = {}) {
    super(canvas, options.windowMs ?? 5 * 60 * 1000, options.maxPoints ?? 300);
    this.legend = legend;
    this.maxSeries = options.maxSeries ?? 8;
    /** participants left out of the chart (beyond `maxSeries`) */
    this.omitted = new Set();
    /** @type {Map<string, {name: string, colour: string, points: {t: number, v: number}[]}>} */
    this.series = new Map();
    // Time moves on between readings: redraw now and then so the lines slide left.
    setInterval(() => this.series.size && this.draw(), 5000);
    this.draw();
  }

  /**
   * @param {string} key      participant id
   * @param {string} name     shown in the legend
   * @param {number} value    HRV (ms)
   * @param {number} [t]      epoch ms; default now
   */
  add(key, name, value, t = Date.now()) {
    if (!Number.isFinite(value)) return;
    let s = this.series.get(key);
    if (!s && this.series.size >= this.maxSeries) {
      if (!this.omitted.has(key)) {
        this.omitted.add(key);
        this.renderLegend();
      }
      return;
    }
    if (!s) {
      s = { name, colour: COLOURS[this.series.size % COLOURS.length], points: [] };
      this.series.set(key, s);
      this.renderLegend();
    }
    s.points.push({ t, v: value });
    if (s.points.length > this.maxPoints) s.points.splice(0, s.points.length - this.maxPoints);
    this.schedule();
  }

  clear() {
    this.series.clear();
    this.omitted.clear();
    this.renderLegend();
    this.draw();
  }

  renderLegend() {
    if (!this.legend) return;
    this.legend.replaceChildren();
    for (const s of this.series.values()) {
      const item = document.createElement("span");
      item.style.setProperty("--c", s.colour);
      item.textContent = s.name;
      this.legend.append(item);
    }
    if (this.omitted.size) {
      const more = document.createElement("em");
      more.className = "muted";
      more.textContent = `+${this.omitted.size} more (see the group curve)`;
      this.legend.append(more);
    }
  }

  draw() {
    const all = [...this.series.values()].flatMap((s) => s.points);
    const now = Date.now();
    const latest = all.length ? Math.max(now, ...all.map((p) => p.t)) : now;
    const earliest = all.length ? Math.min(...all.map((p) => p.t)) : latest;
    const { span, start } = this.timeWindow(earliest, latest);
    const visible = all.filter((p) => p.t >= start);
    const top = visible.length ? niceCeil(Math.max(...visible.map((p) => p.v)) * 1.1) : 100;
    const last = span < 120000 ? `${Math.round(span / 1000)} s` : `${Math.round(span / 60000)} min`;
    const plot = this.grid(start, span, top, `ms · last ${last}`);
    if (!plot) return;
    if (!visible.length) return plot.empty("no HRV readings yet", "HRV chart: no readings yet");
    const { ctx, x, y } = plot;
    const summary = [];
    for (const s of this.series.values()) {
      const pts = s.points.filter((p) => p.t >= start);
      if (!pts.length) continue;
      ctx.strokeStyle = s.colour;
      ctx.fillStyle = s.colour;
      ctx.lineWidth = 2;
      ctx.beginPath();
      pts.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p.v)) : ctx.moveTo(x(p.t), y(p.v))));
      ctx.stroke();
      for (const p of pts) {
        ctx.beginPath();
        ctx.arc(x(p.t), y(p.v), 3, 0, Math.PI * 2);
        ctx.fill();
      }
      summary.push(`${s.name} ${pts[pts.length - 1].v} ms`);
    }
    this.canvas.setAttribute("aria-label", `HRV chart, latest: ${summary.join(", ")}`);
  }
}

/** @param {number} v */
function niceCeil(v) {
  if (v <= 0) return 10;
  const mag = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= v) return m * mag;
  return 10 * mag;
}


/**
 * The group's HRV over time from `hrv_summary` events: the average as a line, the
 * range from the lowest to the highest latest reading as a band. One point a second
 * whatever the size of the class.
 */
export class GroupHrvChart extends CanvasChart {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{windowMs?: number, maxPoints?: number}} [options]
   */
  constructor(canvas, options = {}) {
    super(canvas, options.windowMs ?? 10 * 60 * 1000, options.maxPoints ?? 900);
    /** @type {{t: number, avg: number, min: number, max: number}[]} */
    this.points = [];
    this.draw();
  }

  /** @param {Record<string, any>} summary  an hrv_summary's data @param {number} [t] epoch ms */
  add(summary, t = Date.now()) {
    const avg = Number(summary.average_hrv);
    if (!Number.isFinite(avg)) return;
    const min = Number.isFinite(Number(summary.min_hrv)) ? Number(summary.min_hrv) : avg;
    const max = Number.isFinite(Number(summary.max_hrv)) ? Number(summary.max_hrv) : avg;
    this.points.push({ t, avg, min, max });
    if (this.points.length > this.maxPoints) this.points.splice(0, this.points.length - this.maxPoints);
    this.schedule();
  }

  draw() {
    const latest = this.points.length ? this.points[this.points.length - 1].t : Date.now();
    const earliest = this.points.length ? this.points[0].t : latest;
    const { span, start } = this.timeWindow(earliest, latest);
    const visible = this.points.filter((p) => p.t >= start);
    const top = visible.length ? niceCeil(Math.max(...visible.map((p) => p.max)) * 1.1) : 100;
    const plot = this.grid(start, span, top, `ms · group average and range · last ${Math.round(span / 1000)} s`);
    if (!plot) return;
    if (!visible.length) return plot.empty("no group summary yet", "Group HRV chart: no summary yet");
    const { ctx, x, y } = plot;
    ctx.fillStyle = "rgba(11, 92, 173, 0.15)";
    ctx.beginPath();
    visible.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p.max)) : ctx.moveTo(x(p.t), y(p.max))));
    for (let i = visible.length - 1; i >= 0; i--) ctx.lineTo(x(visible[i].t), y(visible[i].min));
    ctx.closePath();
    ctx.fill();
    ctx.strokeStyle = "#0b5cad";
    ctx.lineWidth = 2;
    ctx.beginPath();
    visible.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p.avg)) : ctx.moveTo(x(p.t), y(p.avg))));
    ctx.stroke();
    const last = visible[visible.length - 1];
    this.canvas.setAttribute("aria-label", `Group HRV: average ${last.avg} ms, range ${last.min}–${last.max} ms`);
  }
}
