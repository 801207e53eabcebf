// A seat from a join link (/j/<code>, docs/browser.md "Join links"): the page keeps the
// renewal credential the hub answered when the person picked a name, and trades it for a
// fresh short-lived token whenever the client asks (getToken). Kept in localStorage so a
// reload, or coming back to the link later on the same device, keeps the same identity;
// the identity itself never travels in a URL.

const PREFIX = "hub-seat:";

/**
 * @typedef {Object} Seat
 * @property {string} code
 * @property {string} renewal
 * @property {string} token
 * @property {number} expiresAt   ms since the epoch
 * @property {string} sessionId
 * @property {string} role
 * @property {string} name
 * @property {string} userId
 * @property {string} page        where the seat is used: /participant or /dashboard
 */

/** The hub refused the link or the seat: `reason` revoked, expired, used_up, session_ended, unknown. */
export class SeatRefused extends Error {
  /** @param {number} status @param {string} reason @param {string} message */
  constructor(status, reason, message) {
    super(message);
    this.status = status;
    this.reason = reason;
  }
}

/** @param {string} code @returns {Seat | null} */
export function loadSeat(code) {
  try {
    const raw = localStorage.getItem(PREFIX + code);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

/** @param {string} code */
export function forgetSeat(code) {
  localStorage.removeItem(PREFIX + code);
}

/** @param {string} code @param {any} answer  the body of POST /j/{code}/token @param {string} [renewal] */
function store(code, answer, renewal) {
  const previous = loadSeat(code);
  /** @type {Seat} */
  const seat = {
    code,
    renewal: renewal || answer.renewal || previous?.renewal || "",
    token: answer.token,
    expiresAt: Date.now() + answer.expires_in * 1000,
    sessionId: answer.session_id,
    role: answer.role,
    name: answer.name,
    userId: answer.user_id,
    page: answer.page,
  };
  localStorage.setItem(PREFIX + code, JSON.stringify(seat));
  return seat;
}

/** @param {string} code @param {Record<string, string>} body */
async function post(code, body) {
  let res;
  try {
    res = await fetch(`/j/${encodeURIComponent(code)}/token`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify(body),
    });
  } catch {
    throw new SeatRefused(0, "network", "The hub cannot be reached; check your connection.");
  }
  const json = await res.json().catch(() => ({}));
  if (!res.ok) {
    const e = json.error || {};
    const reason = (e.details && e.details.reason) || (res.status === 404 ? "unknown" : e.code || "error");
    throw new SeatRefused(res.status, reason, e.message || res.statusText);
  }
  return json;
}

/** Join: claim a seat under `name`. @param {string} code @param {string} name @returns {Promise<Seat>} */
export async function claimSeat(code, name) {
  return store(code, await post(code, { name }));
}

/**
 * A fresh token for the seat (the client's getToken). Refusals that will not change
 * (revoked, session ended, a credential the hub does not know) throw SeatRefused.
 * @param {string} code @returns {Promise<string>}
 */
export async function renewSeat(code) {
  const seat = loadSeat(code);
  if (!seat) throw new SeatRefused(401, "no_seat", "This device has not joined with this link.");
  return store(code, await post(code, { renewal: seat.renewal }), seat.renewal).token;
}

/** The seat's token if it is still good for a while, else null. @param {string} code */
export function currentToken(code) {
  const seat = loadSeat(code);
  return seat && seat.expiresAt - Date.now() > 5000 ? seat.token : null;
}

/**
 * The claims of a token, read without checking it (the hub checks it): for the page to
 * know the name and role it will act under. @param {string | null} token
 * @returns {Record<string, any> | null}
 */
export function tokenClaims(token) {
  if (!token) return null;
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const text = new TextDecoder().decode(Uint8Array.from(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")), (c) => c.charCodeAt(0)));
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** What a refusal means for the person holding the link. @param {string} reason */
export function refusalText(reason) {
  return (
    {
      revoked: "This invite was revoked. Ask the instructor for a new link.",
      expired: "This invite has expired. Ask the instructor for a new link.",
      used_up: "This invite has already admitted as many people as it may. Ask the instructor for a new link.",
      session_ended: "This session has ended. Thank you for joining.",
      unknown: "This link is not valid. Check that it was copied whole.",
      network: "The hub cannot be reached; check your connection and try again.",
    }[reason] || ""
  );
}
