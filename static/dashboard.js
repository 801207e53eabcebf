// The monitoring dashboard: every live session with participant counts, event rates and
// group HRV (polled), and one session's event feed watched read-only as an observer, over
// the session's Server-Sent Events stream (hub-stream.js): a dashboard never sends.
import { connectStream } from "./hub-stream.js";
import { GroupHrvChart, HrvChart } from "./hrv-chart.js";
import { renewSeat, tokenClaims } from "./seat.js";
import { $, api, appendFeed, bindConnection, clock, feedItem, h, pageToken, query } from "./ui.js";

/** @typedef {import("./hub-client.js").HubMessage} HubMessage */

const POLL_MS = 2000;
const RATE_WINDOW_MS = 60000;
// Beyond this many participants sending HRV, single readings stay out of the feed (the
// group chart shows them): a class of a thousand would otherwise flood it.
const FEED_READERS_MAX = 20;

const state = {
  /** @type {Map<string, {t: number, head: number}[]>} head_seq history per session */
  heads: new Map(),
  /** @type {string | null} */
  watching: null,
  /** @type {import("./hub-stream.js").StreamClient | null} */
  client: null,
  /** @type {HrvChart | null} */
  chart: null,
  /** @type {GroupHrvChart | null} */
  group: null,
  /** participants seen sending HRV in the watched session */
  readers: new Set(),
  lastOk: 0,
};

/** "61.5 ms · +12% · 40 reporting" from a live listing's group_hrv. @param {any} g */
function groupText(g) {
  if (!g || g.average_hrv == null) return "–";
  const gain = g.average_hrv_improvement;
  const average = Number(g.average_hrv).toFixed(1);
  return `${average} ms${gain != null ? ` · ${gain > 0 ? "+" : ""}${Number(gain).toFixed(1)}%` : ""} · ${g.participants_reporting} reporting`;
}

/** events per minute over the last minute, from head_seq samples */
function rate(/** @type {string} */ id, /** @type {number} */ head) {
  const now = Date.now();
  const samples = state.heads.get(id) || [];
  samples.push({ t: now, head });
  while (samples.length > 2 && now - samples[0].t > RATE_WINDOW_MS) samples.shift();
  state.heads.set(id, samples);
  const first = samples[0];
  const span = now - first.t;
  if (span < 1000) return null;
  return ((head - first.head) * 60000) / span;
}

async function poll() {
  try {
    const live = await api("GET", "/api/v2/sessions/live");
    state.lastOk = Date.now();
    render(live.sessions);
    $("poll-status").dataset.state = "open";
    $("poll-status").textContent = `Updated ${clock(null)}`;
  } catch (err) {
    $("poll-status").dataset.state = "closed";
    $("poll-status").textContent = `Hub unreachable (${/** @type {Error} */ (err).message})`;
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

/** @param {any[]} sessions */
function render(sessions) {
  const body = $("sessions-body");
  const rows = [];
  let participants = 0;
  let totalRate = 0;
  for (const s of sessions) {
    const r = rate(s.session_id, s.head_seq);
    participants += s.participant_count;
    totalRate += r || 0;
    const watching = state.watching === s.session_id;
    rows.push(
      h(
        "tr",
        { dataset: { sessionId: s.session_id }, "aria-selected": watching ? "true" : "false" },
        h("td", { class: "title-cell", "data-label": "Session" }, s.title, h("br"), h("span", { class: "mono muted" }, s.session_id)),
        h("td", { "data-label": "Status" }, s.status.replace("_", " ")),
        h("td", { class: "num participants", "data-label": "Participants" }, String(s.participant_count)),
        h("td", { class: "num", "data-label": "Events" }, String(s.head_seq)),
        h("td", { class: "num rate", "data-label": "Events/min" }, r === null ? "…" : r.toFixed(1)),
        h("td", { "data-label": "Technique" }, s.current_technique ? s.current_technique.technique : "–"),
        h("td", { class: "group-hrv", "data-label": "Group HRV" }, groupText(s.group_hrv)),
        h(
          "td",
          { "data-label": "Watch" },
          h(
            "button",
            {
              type: "button",
              class: watching ? "" : "secondary",
              "aria-label": `Watch ${s.title} (${s.session_id})`,
              onclick: () => watch(s.session_id, s.title, s.head_seq),
            },
            watching ? "Watching" : "Watch",
          ),
        ),
      ),
    );
  }
  body.replaceChildren(...rows);
  $("no-sessions").hidden = sessions.length > 0;
  $("live-count").textContent = String(sessions.length);
  $("total-participants").textContent = String(participants);
  $("total-rate").textContent = totalRate.toFixed(1);
  for (const id of [...state.heads.keys()]) {
    if (!sessions.some((s) => s.session_id === id)) state.heads.delete(id);
  }
}

async function pollMetrics() {
  try {
    const res = await fetch("/metrics");
    if (res.ok) {
      const text = await res.text();
      $("m-connections").textContent = metric(text, "hub_connections") ?? "–";
      $("m-slow").textContent = metric(text, "hub_slow_consumer_closes_total") ?? "–";
    }
  } catch {
    /* the sessions poll reports the hub as unreachable */
  } finally {
    setTimeout(pollMetrics, 5000);
  }
}

/** Sum of a Prometheus metric's samples. @param {string} text @param {string} name */
function metric(text, name) {
  let sum = null;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/);
    if (m && m[1] === name) sum = (sum ?? 0) + Number(m[3]);
  }
  return sum === null ? null : String(Math.round(sum));
}

/** @param {string} sessionId @param {string} title @param {number} head */
function watch(sessionId, title, head) {
  stopWatching();
  state.watching = sessionId;
  const url = new URL(location.href);
  url.searchParams.set("watch", sessionId);
  history.replaceState(null, "", url);
  $("watch").hidden = false;
  $("watch-title").textContent = `Watching ${title || sessionId}`;
  $("feed").replaceChildren();
  $("conn-log").replaceChildren();
  state.chart = state.chart || new HrvChart($("hrv-chart"), $("hrv-legend"));
  state.chart.clear();
  state.group = state.group || new GroupHrvChart($("group-chart"));
  state.group.points = [];
  state.readers = new Set();
  // Observers are read-only; start 50 events back so the feed is not empty.
  const invite = query().get("invite"); // an observer's join link: its seat renews the token
  const renew = invite ? { getToken: () => renewSeat(invite) } : {};
  const since = head ? Math.max(0, head - 50) : null;
  const client = connectStream(sessionId, "observer", "dashboard", pageToken(), { since, ...renew });
  state.client = client;
  /** @type {any} */ (window).hubClient = client;
  bindConnection(client, $("badge"), $("banner"), (change) => {
    const text =
      change.state === "resuming" && change.code
        ? `closed ${change.code} ${change.reason || ""} → reconnecting in ${((change.delay || 0) / 1000).toFixed(1)} s`
        : `${change.state}${change.reason ? ` (${change.reason})` : ""}${change.lastSeq != null ? ` at seq ${change.lastSeq}` : ""}`;
    appendFeed($("conn-log"), h("li", { dataset: { state: change.state } }, `${clock(null)} ${text}`), 50);
    $("w-reconnects").textContent = String(client.stats.reconnects);
  });
  client.on("event", (/** @type {HubMessage} */ msg) => {
    $("w-seq").textContent = String(msg.seq);
    $("w-dups").textContent = String(client.stats.duplicatesDropped);
    if (msg.type === "hrv_update" && msg.actor) {
      state.readers.add(msg.actor.user_id);
      state.chart?.add(msg.actor.user_id, msg.actor.name, Number(msg.data.hrv), Date.parse(msg.ts));
      if (state.readers.size > FEED_READERS_MAX) return;
    }
    if (msg.type === "hrv_summary") {
      state.group?.add(msg.data, Date.parse(msg.ts));
      return;
    }
    appendFeed($("feed"), feedItem(msg));
  });
  client.on("welcome", (/** @type {HubMessage} */ msg) => {
    $("w-seq").textContent = String(msg.data.head_seq);
  });
}

function stopWatching() {
  if (state.client) state.client.close();
  state.client = null;
  state.watching = null;
  $("watch").hidden = true;
}

$("stop-watch").addEventListener("click", () => {
  stopWatching();
  const url = new URL(location.href);
  url.searchParams.delete("watch");
  history.replaceState(null, "", url);
});

/**
 * `?watch=ID`: watch from the link, with the last 50 events like the Watch button (the
 * session's head comes from its record). @param {string} sessionId
 */
async function watchFromLink(sessionId) {
  try {
    const record = await api("GET", `/api/v2/session/${encodeURIComponent(sessionId)}`);
    watch(sessionId, record.title, record.head_seq);
  } catch {
    watch(sessionId, sessionId, 0); // the connection says what is wrong (not found, no token)
  }
}

// Webhook endpoints (admin tokens, or dev mode): state, backlog, lag and recent failures.
const WEBHOOK_POLL_MS = 5000;

async function pollWebhooks() {
  try {
    const listing = await api("GET", "/api/v2/webhooks");
    renderWebhooks(listing.webhooks);
    $("webhooks-note").hidden = listing.count > 0;
    $("webhooks-note").textContent = "No webhook endpoints registered (POST /api/v2/webhooks).";
  } catch (err) {
    const failure = /** @type {import("./ui.js").ApiFailure} */ (err);
    $("webhooks-body").replaceChildren();
    $("webhooks-note").hidden = false;
    $("webhooks-note").textContent =
      failure.status === 403 || failure.status === 401
        ? "Webhooks are shown to admin tokens only."
        : `Webhooks unavailable (${failure.message}).`;
  } finally {
    setTimeout(pollWebhooks, WEBHOOK_POLL_MS);
  }
}

/** @param {number | null} seconds */
function lag(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  return seconds < 1 ? `${Math.round(seconds * 1000)} ms` : `${seconds.toFixed(1)} s`;
}

/** @param {any[]} hooks */
function renderWebhooks(hooks) {
  $("webhooks-body").replaceChildren(
    ...hooks.map((w) =>
      h(
        "tr",
        { dataset: { webhookId: w.id, state: w.state } },
        h(
          "td",
          { class: "title-cell", "data-label": "Endpoint" },
          w.url,
          h("br"),
          h("span", { class: "mono muted" }, `${w.events.join(", ")}${w.session_id ? ` · ${w.session_id}` : ""}`),
        ),
        h("td", { "data-label": "State" }, h("span", { class: "badge", dataset: { state: badgeState(w.state) } }, w.state)),
        h("td", { class: "num", "data-label": "Backlog" }, String(w.backlog)),
        h("td", { class: "num", "data-label": "Lag" }, lag(w.lag_seconds)),
        h("td", { class: "num", "data-label": "Failures (1 h)" }, String(w.failures_last_hour)),
        h("td", { class: "mono small", "data-label": "Last error" }, w.last_error || "–"),
        h(
          "td",
          { "data-label": "Failures" },
          h(
            "button",
            { type: "button", class: "secondary", "aria-label": `Recent failures of ${w.url}`, onclick: () => showFailures(w) },
            "Failures",
          ),
        ),
      ),
    ),
  );
}

/** @param {string} webhookState */
function badgeState(webhookState) {
  return webhookState === "healthy" ? "open" : webhookState === "retrying" ? "connecting" : "closed";
}

/** The endpoint's recent attempts that did not deliver. @param {any} w */
async function showFailures(w) {
  const list = $("webhook-failures");
  list.hidden = false;
  try {
    const attempts = await api("GET", `/api/v2/webhooks/${w.id}/deliveries?limit=200`);
    const failed = attempts.deliveries.filter((/** @type {any} */ a) => a.status !== "delivered").slice(0, 20);
    list.replaceChildren(
      h("li", { class: "muted" }, `${w.url}: ${failed.length ? "recent failed attempts" : "no recent failures"}`),
      ...failed.map((/** @type {any} */ a) =>
        h(
          "li",
          { dataset: { status: a.status } },
          `${clock(a.attempted_at)} ${a.event.type} seq ${a.event.seq} (${a.event.session_id}) attempt ${a.attempt}: ` +
            `${a.status}, ${a.error || a.response_code}` +
            (a.next_retry_at ? `, next try ${clock(a.next_retry_at)}` : ""),
        ),
      ),
    );
  } catch (err) {
    list.replaceChildren(h("li", {}, `could not load attempts: ${/** @type {Error} */ (err).message}`));
  }
}

const initial = query().get("watch");
if (initial) watchFromLink(initial);
poll();
pollMetrics();
// Webhooks are an admin's: a page with another role's token (an observer's join link)
// does not ask for them, and shows no panel.
const role = tokenClaims(pageToken())?.role;
if (!role || role === "admin") pollWebhooks();
else $("webhooks-panel").hidden = true;
