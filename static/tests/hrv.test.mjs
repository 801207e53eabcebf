// static/hrv.js against known values: RMSSD by hand, the artefact filter, and Heart Rate
// Measurement notifications as straps send them. Run: node --test static/tests/
import assert from "node:assert/strict";
import { test } from "node:test";

import { RrWindow, cleanRmssd, cleanRuns, parseHeartRateMeasurement, rmssd } from "../hrv.js";

const close = (actual, expected, digits = 4) =>
  assert.ok(Math.abs(actual - expected) < 10 ** -digits, `${actual} is not ${expected}`);

/** A notification: flags, then little-endian fields. */
function notification(flags, ...fields) {
  const bytes = [flags];
  for (const [value, size] of fields) {
    bytes.push(value & 0xff);
    if (size === 2) bytes.push(value >> 8);
  }
  return new DataView(Uint8Array.from(bytes).buffer);
}

test("rmssd of known series", () => {
  // diffs 10, -20, 15: squares 100, 400, 225; mean 241.666…; root 15.5456…
  close(rmssd([800, 810, 790, 805]), Math.sqrt(725 / 3));
  close(rmssd([800, 810, 790, 805]), 15.54563, 5);
  // A perfectly regular heart has no variability.
  assert.equal(rmssd([1000, 1000, 1000]), 0);
  // Alternating by 50 ms: every difference is ±50.
  assert.equal(rmssd([900, 950, 900, 950, 900]), 50);
  // diffs 50, -70, 40: squares 2500, 4900, 1600; √(9000 / 3) = √3000
  close(rmssd([1000, 1050, 980, 1020]), 54.77226, 5);
  assert.equal(rmssd([812]), null);
  assert.equal(rmssd([]), null);
});

test("artefacts break the chain instead of bridging it", () => {
  // 400 is a 50 % drop (an extra beat), 2500 is out of range: neither enters a difference.
  assert.deepEqual(cleanRuns([800, 810, 400, 790, 805, 2500, 800]), [[800, 810], [400], [790, 805], [800]]);
  // Pooled differences: 10 (800→810) and 15 (790→805): √((100 + 225) / 2)
  close(cleanRmssd([800, 810, 400, 790, 805, 2500, 800]), Math.sqrt(325 / 2));
  assert.equal(cleanRmssd([250, 2600]), null);
});

test("Heart Rate Measurement: 8-bit rate, RR intervals in 1/1024 s", () => {
  // flags 0x10: uint8 rate, RR present. 1024 → 1000 ms, 819 → 799.8 ms
  const m = parseHeartRateMeasurement(notification(0x10, [72, 1], [1024, 2], [819, 2]));
  assert.equal(m.heartRate, 72);
  assert.equal(m.contact, null);
  assert.equal(m.energy, null);
  assert.deepEqual(m.rr, [1000, (819 * 1000) / 1024]);
});

test("Heart Rate Measurement: 16-bit rate, contact, energy, then RR", () => {
  // flags 0x1F: uint16 rate, contact supported and detected, energy present, RR present
  const m = parseHeartRateMeasurement(notification(0x1f, [300, 2], [12, 2], [512, 2]));
  assert.equal(m.heartRate, 300);
  assert.equal(m.contact, true);
  assert.equal(m.energy, 12);
  assert.deepEqual(m.rr, [500]);
  // Contact supported, not detected; no RR in this notification.
  const lost = parseHeartRateMeasurement(notification(0x04, [60, 1]));
  assert.equal(lost.contact, false);
  assert.deepEqual(lost.rr, []);
});

test("RrWindow keeps the last minute and answers once it has enough beats", () => {
  const window = new RrWindow(60, 4);
  window.add([800, 810]);
  assert.equal(window.rmssd(), null, "too few beats");
  window.add([790, 805]);
  assert.equal(window.rmssd(), 15.5);
  // 80 more beats of 1000 ms: the window keeps only the last 60 s of them.
  window.add(Array(80).fill(1000));
  assert.equal(window.rr.length, 60);
  assert.equal(window.rmssd(), 0);
});
