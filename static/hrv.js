// Heart-rate variability from a Bluetooth heart-rate strap, computed in the page: pure
// functions (no DOM, no Bluetooth), unit-tested in static/tests/hrv.test.mjs.
//
// A strap speaks the standard Heart Rate service (0x180D); its Heart Rate Measurement
// characteristic (0x2A37) notifies a flags byte, the heart rate, optionally the energy
// expended, then optionally RR intervals: the times between beats in 1/1024 s
// (Bluetooth SIG, Heart Rate Service 1.0, §3.1). RMSSD, the root mean square of
// successive differences of RR intervals in ms, is the HRV figure the hub carries.

export const HEART_RATE_SERVICE = 0x180d;
export const HEART_RATE_MEASUREMENT = 0x2a37;

/** RR intervals outside this range (ms) are not beats of a resting adult: 30–200 bpm. */
export const RR_MIN_MS = 300;
export const RR_MAX_MS = 2000;
/** A beat that differs from the previous accepted one by more than this fraction is an
 * artefact (a missed or extra beat), as in the usual 20 % filter. */
export const MAX_CHANGE = 0.2;

/**
 * @typedef {Object} Measurement
 * @property {number} heartRate          beats per minute
 * @property {boolean | null} contact    sensor contact, when the strap reports it
 * @property {number | null} energy      kJ expended, when present
 * @property {number[]} rr               RR intervals in ms, in the order received
 */

/**
 * Decode one Heart Rate Measurement notification.
 * @param {DataView} view
 * @returns {Measurement}
 */
export function parseHeartRateMeasurement(view) {
  const flags = view.getUint8(0);
  let offset = 1;
  let heartRate;
  if (flags & 0x01) {
    heartRate = view.getUint16(offset, true);
    offset += 2;
  } else {
    heartRate = view.getUint8(offset);
    offset += 1;
  }
  const contact = flags & 0x04 ? Boolean(flags & 0x02) : null;
  let energy = null;
  if (flags & 0x08) {
    energy = view.getUint16(offset, true);
    offset += 2;
  }
  const rr = [];
  if (flags & 0x10) {
    for (; offset + 1 < view.byteLength; offset += 2) rr.push((view.getUint16(offset, true) * 1000) / 1024);
  }
  return { heartRate, contact, energy, rr };
}

/**
 * RMSSD of consecutive RR intervals (ms), or null with fewer than two.
 * @param {number[]} rr
 * @returns {number | null}
 */
export function rmssd(rr) {
  if (rr.length < 2) return null;
  let sum = 0;
  for (let i = 1; i < rr.length; i++) sum += (rr[i] - rr[i - 1]) ** 2;
  return Math.sqrt(sum / (rr.length - 1));
}

/**
 * The intervals that are plausible beats: in range, and within MAX_CHANGE of the
 * previous accepted one. Differences are only taken between neighbours that both pass
 * (an artefact breaks the chain rather than bridging it), so each run is returned apart.
 * @param {number[]} rr
 * @returns {number[][]} runs of clean consecutive intervals
 */
export function cleanRuns(rr) {
  /** @type {number[][]} */
  const runs = [];
  /** @type {number[]} */
  let run = [];
  for (const value of rr) {
    const plausible = value >= RR_MIN_MS && value <= RR_MAX_MS;
    const previous = run[run.length - 1];
    if (plausible && (previous === undefined || Math.abs(value - previous) <= MAX_CHANGE * previous)) {
      run.push(value);
      continue;
    }
    if (run.length) runs.push(run);
    run = plausible ? [value] : [];
  }
  if (run.length) runs.push(run);
  return runs;
}

/**
 * RMSSD over clean runs only: the successive differences of every run, pooled.
 * @param {number[]} rr
 * @returns {number | null}
 */
export function cleanRmssd(rr) {
  let sum = 0;
  let count = 0;
  for (const run of cleanRuns(rr)) {
    for (let i = 1; i < run.length; i++) {
      sum += (run[i] - run[i - 1]) ** 2;
      count += 1;
    }
  }
  return count ? Math.sqrt(sum / count) : null;
}

/** The last `seconds` of RR intervals from a strap, and their RMSSD. */
export class RrWindow {
  /** @param {number} [seconds] @param {number} [minBeats] */
  constructor(seconds = 60, minBeats = 20) {
    this.seconds = seconds;
    this.minBeats = minBeats;
    /** @type {number[]} */
    this.rr = [];
  }

  /** @param {number[]} intervals  ms */
  add(intervals) {
    this.rr.push(...intervals);
    let total = this.rr.reduce((a, b) => a + b, 0);
    while (this.rr.length && total - this.rr[0] >= this.seconds * 1000) total -= /** @type {number} */ (this.rr.shift());
  }

  /** RMSSD (ms, one decimal) of the window, or null until it holds `minBeats` clean beats. */
  rmssd() {
    const beats = cleanRuns(this.rr).reduce((n, run) => n + run.length, 0);
    if (beats < this.minBeats) return null;
    const value = cleanRmssd(this.rr);
    return value == null ? null : Math.round(value * 10) / 10;
  }

  clear() {
    this.rr = [];
  }
}
