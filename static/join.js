// The page behind a join link (/j/<code>): shows what the invite admits to, lets the person
// pick a display name, claims a seat (seat.js) and opens the session's page with it.
import { SeatRefused, claimSeat, forgetSeat, loadSeat, refusalText } from "./seat.js";
import { $ } from "./ui.js";

const code = decodeURIComponent(location.pathname.split("/").pop() || "").toLowerCase();

/** @param {import("./seat.js").Seat} seat */
function open(seat) {
  const target = new URL(seat.page, location.origin);
  target.searchParams.set("invite", code);
  if (seat.role === "observer") target.searchParams.set("watch", seat.sessionId);
  location.assign(target.toString());
}

/** @param {string} reason @param {string} [fallback] */
function refuse(reason, fallback) {
  const box = $("refused");
  box.textContent = refusalText(reason) || fallback || "This link cannot be used now.";
  box.hidden = false;
  $("name-form").hidden = true;
  $("returning").hidden = true;
}

async function init() {
  let invite;
  try {
    const res = await fetch(`/j/${encodeURIComponent(code)}/invite`, { headers: { accept: "application/json" } });
    invite = await res.json();
    if (!res.ok) {
      $("join-title").textContent = "Join a session";
      refuse(res.status === 404 ? "unknown" : "", invite?.error?.message);
      return;
    }
  } catch {
    refuse("network");
    return;
  }
  const as = invite.role === "observer" ? "to watch" : "";
  $("join-title").textContent = `${invite.title}`;
  $("heading").textContent = "Join a session";
  document.title = `Join ${invite.title} · Session Hub`;
  $("invite-line").textContent = `You are invited ${as || "to take part"}${invite.status === "scheduled" ? " (not started yet)" : ""}.`;
  const seat = loadSeat(code);
  if (invite.state !== "active" && !(seat && invite.state === "expired")) {
    refuse(invite.state, invite.message);
    return;
  }
  if (seat) {
    $("returning-name").textContent = seat.name;
    $("continue-name").textContent = seat.name;
    $("returning").hidden = false;
    $("continue").addEventListener("click", () => open(seat));
    $("someone-else").addEventListener("click", () => {
      forgetSeat(code);
      $("returning").hidden = true;
      showForm();
    });
    return;
  }
  showForm();
}

function showForm() {
  $("name-form").hidden = false;
  $("name").value = localStorage.getItem("hub-name") || "";
  $("name").focus();
  $("name-form").addEventListener("submit", async (/** @type {Event} */ ev) => {
    ev.preventDefault();
    const name = $("name").value.trim();
    if (!name) return;
    $("join-button").disabled = true;
    try {
      localStorage.setItem("hub-name", name);
      open(await claimSeat(code, name));
    } catch (err) {
      $("join-button").disabled = false;
      if (err instanceof SeatRefused) refuse(err.reason, err.message);
      else refuse("", String(err));
    }
  });
}

init();
