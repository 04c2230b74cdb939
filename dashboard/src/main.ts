import "./style.css";
import { admin, ApiError, session, type Alarm, type Overview } from "./api.js";
import { fill, fmt, h } from "./dom.js";
import { clientLink, clientPage, clientsPage, evidence, modelsPage, overviewPage, type Ctx, type Page } from "./pages.js";

/**
 * heist's operator dashboard. Asks for the admin token (kept in sessionStorage: gone when the tab
 * closes), then polls the admin API every two seconds while the tab is visible: the overview for
 * the header's alarm light, and whatever the current page shows. Pages are addressed by the URL's
 * hash (#/overview, #/clients, #/clients/<id>, #/models), so the gateway serves one file.
 */

const POLL_MS = 2000;
const root = document.getElementById("app")!;

// ------------------------------------------------------------------ login

function login(message?: string): void {
  stop();
  document.title = "Sign in · heist";
  const token = h("input", { id: "token", name: "token", type: "password", autocomplete: "current-password", required: true, spellcheck: "false" });
  const error = h("p", { class: "login-error", role: "alert", id: "login-error" }, message ?? "");
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    { class: "login card", "aria-labelledby": "login-h" },
    h("h1", { id: "login-h" }, h("span", { class: "brand-mark", "aria-hidden": "true" }, "◆"), " heist operator dashboard"),
    h(
      "p",
      {},
      "Sign in with the gateway's admin token (",
      h("code", {}, "HEIST_ADMIN_TOKEN"),
      "). It is kept for this tab only, and sent to ",
      h("code", {}, "/admin"),
      " as a bearer token.",
    ),
    h("label", { for: "token" }, "Admin token"),
    token,
    error,
    button,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    button.disabled = true;
    fill(error, "");
    try {
      await admin.check(token.value.trim());
      session.set(token.value.trim());
      shell();
    } catch (err) {
      const ae = err as ApiError;
      fill(error, ae.unauthorised ? "That token was refused." : ae.message);
      button.disabled = false;
      token.focus();
    }
  });
  root.replaceChildren(h("main", { id: "main", class: "login-wrap" }, form));
  token.focus();
}

// ------------------------------------------------------------------ the signed-in shell

let timer: number | undefined;
let generation = 0;
let page: Page | undefined;
let known: Set<number> | undefined;
const fresh = new Set<number>();
let lastOverview: Overview | undefined;
let busy = false;

const nav = [
  ["#/overview", "Overview"],
  ["#/clients", "Clients"],
  ["#/models", "Models"],
] as const;
let els:
  | {
      main: HTMLElement;
      status: HTMLElement;
      badge: HTMLAnchorElement;
      announcer: HTMLElement;
      notices: HTMLElement;
      links: HTMLAnchorElement[];
      dialog: HTMLDialogElement;
    }
  | undefined;

function shell(): void {
  generation++;
  known = undefined;
  fresh.clear();
  const links = nav.map(([href, label]) => h("a", { href }, label));
  const badge = h(
    "a",
    { href: "#/overview/alarms", class: "alarm-light", id: "alarm-light", "aria-label": "Alarms: none" },
    h("span", { class: "dot", "aria-hidden": "true" }),
    h("span", { class: "alarm-count" }, "0"),
  );
  const status = h("span", { class: "live", id: "live-status" }, "connecting…");
  const signOut = h(
    "button",
    {
      type: "button",
      class: "quiet",
      onclick: () => {
        session.clear();
        login("Signed out.");
      },
    },
    "Sign out",
  );
  const main = h("main", { id: "main", tabindex: -1 });
  const announcer = h("div", { class: "visually-hidden", "aria-live": "assertive", id: "announcer" });
  const notices = h("div", { class: "notices", "aria-label": "New alarms" });
  const dialog = h("dialog", { class: "confirm", "aria-labelledby": "confirm-h" });
  els = { main, status, badge, announcer, notices, links, dialog };
  root.replaceChildren(
    h(
      "a",
      {
        class: "skip",
        href: "#main",
        onclick: (e: Event) => {
          e.preventDefault();
          main.focus();
        },
      },
      "Skip to content",
    ),
    h(
      "header",
      { class: "top" },
      h("a", { class: "brand", href: "#/overview" }, h("span", { class: "brand-mark", "aria-hidden": "true" }, "◆"), " heist"),
      h("nav", { "aria-label": "Sections" }, ...links),
      h("div", { class: "top-right" }, badge, status, signOut),
    ),
    notices,
    main,
    announcer,
    dialog,
  );
  route();
  schedule(0);
}

function route(): void {
  if (!els) return;
  const hash = location.hash || "#/overview";
  const m = /^#\/clients\/(.+)$/.exec(hash);
  const section = m ? "#/clients" : hash.startsWith("#/clients") ? "#/clients" : hash.startsWith("#/models") ? "#/models" : "#/overview";
  page = m
    ? clientPage(decodeURIComponent(m[1]), confirmDialog)
    : section === "#/clients"
      ? clientsPage()
      : section === "#/models"
        ? modelsPage()
        : overviewPage();
  for (const a of els.links) {
    if (a.getAttribute("href") === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  els.main.replaceChildren(page.el);
  document.title = `${page.title} · heist`;
  if (lastOverview) void refreshPage(generation);
  if (hash === "#/overview/alarms") document.getElementById("alarms")?.scrollIntoView();
  // Move focus to the new page's heading (keyboard and screen-reader users land on it), but not on the first load.
  if (routed) (page.el.querySelector("h1") as HTMLElement | null)?.focus();
  routed = true;
}
let routed = false;
window.addEventListener("hashchange", () => {
  if (session.get()) route();
});

function stop(): void {
  generation++;
  if (timer !== undefined) clearTimeout(timer);
  timer = undefined;
  els = undefined;
  page = undefined;
  routed = false;
}

function schedule(ms: number): void {
  if (timer !== undefined) clearTimeout(timer);
  const g = generation;
  timer = window.setTimeout(() => void tick(g), ms);
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && els) schedule(0);
});

async function tick(g: number): Promise<void> {
  if (g !== generation || !els) return;
  if (document.hidden) return; // resumed by visibilitychange
  if (busy) return schedule(POLL_MS);
  busy = true;
  try {
    const ov = await admin.overview();
    if (g !== generation) return;
    lastOverview = ov;
    noticeAlarms(ov);
    await refreshPage(g);
    if (g !== generation || !els) return;
    fill(els.status, h("span", { class: "dot ok", "aria-hidden": "true" }), ` live · ${fmt.time(Date.parse(ov.at))} UTC`);
    els.status.classList.remove("down");
  } catch (err) {
    if (err instanceof ApiError && err.unauthorised) {
      session.clear();
      return login("The gateway refused the admin token: sign in again.");
    }
    if (g === generation && els) {
      fill(els.status, h("span", { class: "dot bad", "aria-hidden": "true" }), ` ${(err as Error).message}; retrying`);
      els.status.classList.add("down");
    }
  } finally {
    busy = false;
    if (g === generation) schedule(POLL_MS);
  }
}

async function refreshPage(g: number): Promise<void> {
  if (!page || !lastOverview) return;
  const ctx: Ctx = { overview: lastOverview, fresh, reload: () => schedule(0) };
  const p = page;
  await p.refresh(ctx);
  if (g === generation && p === page) document.title = `${p.title} · heist`;
}

/** Alarms the dashboard has not seen before light up: the header's light, a notice, an announcement. */
function noticeAlarms(ov: Overview): void {
  if (!els) return;
  const first = known === undefined;
  known ??= new Set();
  const added: Alarm[] = [];
  for (const a of ov.alarms) {
    if (known.has(a.id)) continue;
    known.add(a.id);
    if (!first) {
      fresh.add(a.id);
      added.push(a);
    }
  }
  const n = ov.totals.alarms;
  fill(els.badge.querySelector(".alarm-count")!, String(n));
  els.badge.setAttribute("aria-label", n ? `Alarms: ${n}${fresh.size ? `, ${fresh.size} new` : ""}` : "Alarms: none");
  els.badge.classList.toggle("on", n > 0);
  els.badge.classList.toggle("new", fresh.size > 0);
  for (const a of added.reverse()) {
    const close = h("button", { type: "button", class: "quiet", "aria-label": "Dismiss this notice" }, "×");
    const notice = h(
      "div",
      { class: "notice", role: "group", "aria-label": `Alarm ${a.id}`, "data-alarm-id": a.id, "data-client-id": a.clientId },
      h("strong", {}, `${a.detector.toUpperCase()} alarm`),
      " on ",
      clientLink(a.clientId),
      ` — ${evidence(a)}; action: ${a.action}.`,
      close,
    );
    close.addEventListener("click", () => notice.remove());
    els.notices.prepend(notice);
    fill(els.announcer, `New ${a.detector} alarm on client ${a.clientId}: action ${a.action}.`);
  }
}

/** A modal question with a cancel and a confirm button; Escape cancels, focus starts on Cancel. */
function confirmDialog(message: string, action: string): Promise<boolean> {
  const d = els?.dialog;
  if (!d) return Promise.resolve(false);
  return new Promise((resolve) => {
    const cancel = h("button", { type: "button", class: "quiet", autofocus: true }, "Cancel");
    const ok = h("button", { type: "button", class: "danger" }, action);
    d.replaceChildren(h("h2", { id: "confirm-h" }, "Are you sure?"), h("p", {}, message), h("div", { class: "buttons" }, cancel, ok));
    const done = (v: boolean) => {
      d.close();
      resolve(v);
    };
    cancel.addEventListener("click", () => done(false));
    ok.addEventListener("click", () => done(true));
    d.addEventListener("cancel", () => resolve(false), { once: true });
    d.showModal();
    cancel.focus();
  });
}

if (session.get()) shell();
else login();
