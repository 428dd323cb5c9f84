// The screens of the zsm desktop app. Everything secret stays in the Rust
// process: this code sees what a screen shows and what the person types,
// and asks for the rest through the IPC commands of api.ts.
import "./style.css";
import { api, AppStatus, CommandError, Invitation, RefusedVault, Revision, SecretSummary, Session, SyncStatus, Vault } from "./api";
import { ago, h, mount, when } from "./dom";

type View =
  | { kind: "vault" }
  | { kind: "secret"; name: string }
  | { kind: "edit"; name: string }
  | { kind: "history"; name: string }
  | { kind: "add" }
  | { kind: "sessions" }
  | { kind: "refused"; id: string }
  | { kind: "invitation"; id: string };

const app = document.getElementById("app")!;

let status: AppStatus | null = null;
let vaults: Vault[] = [];
// Vaults that failed verification: listed apart, never silently dropped.
let refused: RefusedVault[] = [];
// Vaults shared by accounts not verified yet: shown apart, never opened.
let invitations: Invitation[] = [];
let vault: Vault | null = null;
let secrets: SecretSummary[] = [];
let view: View = { kind: "vault" };
let sync: SyncStatus | null = null;
let search = "";
let kitText: string | null = null;
// Bumped by every navigation: an async step that finds it changed after an
// await drops its result instead of drawing over where the person went.
let nav = 0;

// ---------------------------------------------------------------- helpers

/** An error as a sentence for the screen (Rust's messages start in lower
 * case, like the CLI's). */
function errorText(e: unknown): string {
  const m = e instanceof CommandError ? e.message : String(e);
  return m.charAt(0).toUpperCase() + m.slice(1) + (/[.!?]$/.test(m) ? "" : ".");
}

let toastTimer: number | undefined;
function hideToast(): void {
  const t = document.getElementById("toast");
  if (t) t.hidden = true;
}
function toast(text: string, kind: "ok" | "error" = "ok"): void {
  let t = document.getElementById("toast");
  if (!t) {
    t = h("div", { id: "toast", role: "status" });
    document.body.append(t);
  }
  t.textContent = text;
  t.className = `toast ${kind}`;
  t.hidden = false;
  window.clearTimeout(toastTimer);
  toastTimer = window.setTimeout(() => {
    t!.hidden = true;
  }, 5000);
}

/** Error codes that mean the app is no longer unlocked. */
const GONE = ["locked", "signed_out", "session_ended"];

/** Runs a command for a button: disables it meanwhile, reports errors, and
 * follows the app when it locked or signed out underneath. */
async function act(button: HTMLButtonElement | null, f: () => Promise<void>): Promise<void> {
  if (button) button.disabled = true;
  try {
    await f();
  } catch (e) {
    if (e instanceof CommandError && GONE.includes(e.code)) {
      await refreshStatus(true);
      return;
    }
    toast(errorText(e), "error");
  } finally {
    if (button && button.isConnected) button.disabled = false;
  }
}

function field(label: string, input: HTMLElement, hint?: string): HTMLElement {
  return h("label", { class: "field" }, h("span", { class: "label" }, label), input, hint ? h("span", { class: "hint" }, hint) : null);
}

function roleBadge(role: string): HTMLElement {
  return h("span", { class: `badge role-${role}`, title: `your role: ${role}` }, role);
}

function minutes(seconds: number): string {
  return seconds % 60 === 0 ? `${seconds / 60} min` : `${seconds} s`;
}

// ------------------------------------------------------------- top level

async function refreshStatus(force = false): Promise<void> {
  const s = await api.appStatus();
  const changed = !status || s.phase !== status.phase || s.identity !== status.identity;
  status = s;
  if (changed || force) {
    if (changed) hideToast();
    if (s.phase !== "unlocked") {
      vaults = [];
      refused = [];
      invitations = [];
      vault = null;
      secrets = [];
      sync = null;
      view = { kind: "vault" };
    }
    await render();
  }
}

// Renders can overlap (a button's handler and the status poll); only the
// newest one draws.
let renderSeq = 0;

async function render(): Promise<void> {
  if (!status) return;
  const seq = ++renderSeq;
  document.body.dataset.phase = status.phase;
  switch (status.phase) {
    case "signed_out":
      return renderSignIn();
    case "locked":
      return renderUnlock();
    case "unlocked":
      return renderMain(seq);
  }
}

// ---------------------------------------------------------------- sign in

function renderSignIn(): void {
  const s = status!;
  const server = h("input", { id: "server", type: "url", value: s.default_server, autocomplete: "off", spellcheck: false, required: true });
  const identity = h("input", { id: "identity", type: "text", value: s.default_identity ?? "", autocomplete: "username", spellcheck: false, required: true });
  const password = h("input", { id: "password", type: "password", autocomplete: "current-password", required: true });
  const secretKey = h("input", { id: "secret-key", type: "password", placeholder: "ZSM1-XXXXXX-XXXXXX-XXXXXX-XXXXXX-XX", autocomplete: "off", spellcheck: false });
  const kitInput = h("input", { id: "kit-file", type: "file", accept: ".txt,text/plain", class: "visually-hidden" });
  const kitName = h("span", { id: "kit-name", class: "hint" }, "");
  const error = h("p", { id: "form-error", class: "error", role: "alert" });
  const submit = h("button", { id: "sign-in", type: "submit", class: "primary" }, "Sign in");
  kitText = null;

  kitInput.addEventListener("change", async () => {
    const file = kitInput.files?.[0];
    if (!file) return;
    error.textContent = "";
    try {
      const text = await file.text();
      const info = await api.readKit(text);
      if (info.server) server.value = info.server;
      if (info.identity) identity.value = info.identity;
      kitText = text;
      secretKey.value = "";
      secretKey.disabled = true;
      secretKey.placeholder = "read from the emergency kit";
      kitName.textContent = `Emergency kit: ${file.name}`;
    } catch (e) {
      error.textContent = errorText(e);
    } finally {
      kitInput.value = "";
    }
  });

  const form = h(
    "form",
    { id: "sign-in-form", class: "card narrow", autocomplete: "off" },
    h("div", { class: "brand" }, h("span", { class: "logo" }), h("h1", {}, "zsm")),
    h("p", { class: "subtitle" }, "Sign in to your zsm server. Your password and Secret Key never leave this device."),
    field("Server", server),
    field("Identity", identity),
    field("Password", password),
    field(
      "Secret Key",
      secretKey,
    ),
    h(
      "div",
      { class: "kit-row" },
      h("label", { for: "kit-file", class: "button-like" }, "Open emergency kit…"),
      kitInput,
      kitName,
    ),
    error,
    h("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    error.textContent = "";
    submit.textContent = "Signing in…";
    void act(submit, async () => {
      try {
        const f: Parameters<typeof api.signIn>[0] = { server: server.value, identity: identity.value, password: password.value };
        if (kitText !== null) f.kit = kitText;
        else f.secretKey = secretKey.value;
        await api.signIn(f);
        password.value = "";
        secretKey.value = "";
        kitText = null;
        await refreshStatus(true);
      } catch (e) {
        if (e instanceof CommandError) {
          error.textContent = errorText(e);
          submit.textContent = "Sign in";
          return;
        }
        throw e;
      }
    });
  });
  mount(app, h("main", { class: "center" }, form));
  (s.default_identity ? password : identity).focus();
}

// ----------------------------------------------------------------- unlock

function renderUnlock(): void {
  const s = status!;
  const password = h("input", { id: "unlock-password", type: "password", autocomplete: "current-password", required: true });
  const error = h("p", { id: "form-error", class: "error", role: "alert" });
  const submit = h("button", { id: "unlock", type: "submit", class: "primary" }, "Unlock");
  const signOut = h("button", { id: "sign-out", type: "button", class: "link" }, "Sign out");
  const reason =
    s.lock_reason === "idle"
      ? `Locked after ${minutes(s.idle_lock_seconds)} without activity. The keys were wiped from memory; your password opens them again.`
      : s.lock_reason === "session_ended"
        ? "The server ended the session. Unlock to sign in again."
        : "Locked. The keys were wiped from memory; your password opens them again.";
  const form = h(
    "form",
    { id: "unlock-form", class: "card narrow" },
    h("div", { class: "brand" }, h("span", { class: "logo locked" }), h("h1", {}, "zsm is locked")),
    h("p", { id: "lock-reason", class: "subtitle" }, reason),
    h("p", { class: "who locked-who" }, h("strong", { id: "locked-identity" }, s.identity ?? ""), h("span", { class: "server" }, s.server ?? "")),
    field("Password", password),
    error,
    h("div", { class: "actions" }, signOut, submit),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    error.textContent = "";
    submit.textContent = "Unlocking…";
    void act(submit, async () => {
      try {
        await api.unlock(password.value);
        password.value = "";
        await refreshStatus(true);
      } catch (e) {
        if (e instanceof CommandError && e.code !== "signed_out") {
          error.textContent = errorText(e);
          submit.textContent = "Unlock";
          return;
        }
        throw e;
      }
    });
  });
  signOut.addEventListener("click", () =>
    void act(signOut, async () => {
      await api.signOut();
      await refreshStatus(true);
    }),
  );
  mount(app, h("main", { class: "center" }, form));
  password.focus();
}

// ------------------------------------------------------------ main screen

async function loadVaults(): Promise<void> {
  const l = await api.listVaults();
  vaults = l.vaults;
  vaults.sort((a, b) => a.name.localeCompare(b.name));
  refused = l.refused;
  invitations = l.invitations;
  if (vault) vault = vaults.find((v) => v.id === vault!.id) ?? null;
  if (!vault && vaults.length > 0) vault = vaults[0]!;
  if (view.kind === "refused" && !refused.some((r) => r.id === (view as { id: string }).id)) view = { kind: "vault" };
  if (view.kind === "invitation" && !invitations.some((i) => i.vault_id === (view as { id: string }).id)) view = { kind: "vault" };
  if (!vault && view.kind !== "sessions" && view.kind !== "refused" && view.kind !== "invitation") view = { kind: "vault" };
}

async function loadSecrets(): Promise<void> {
  secrets = vault ? await api.listSecrets(vault.id) : [];
  secrets.sort((a, b) => a.name.localeCompare(b.name));
}

async function renderMain(seq: number): Promise<void> {
  try {
    if (!sync) {
      // First screen after unlocking: check everything once.
      sync = await api.syncNow().catch(async (e) => {
        toast(errorText(e), "error");
        return api.syncStatus();
      });
    }
    await loadVaults();
    await loadSecrets();
  } catch (e) {
    if (e instanceof CommandError && GONE.includes(e.code)) {
      await refreshStatus(true);
      return;
    }
    toast(errorText(e), "error");
  }
  if (seq === renderSeq) drawMain();
}

function drawMain(): void {
  const s = status!;
  const header = h(
    "header",
    { class: "topbar" },
    h("div", { class: "brand small" }, h("span", { class: "logo" }), h("span", { class: "name" }, "zsm")),
    h("div", { class: "who" }, h("span", { id: "whoami" }, s.identity ?? ""), h("span", { class: "server" }, s.server ?? "")),
    h(
      "div",
      { class: "top-actions" },
      button("sessions", "Sessions", () => go({ kind: "sessions" })),
      button("lock", "Lock now", async (b) => {
        await act(b, async () => {
          await api.lock();
          await refreshStatus(true);
        });
      }),
      button("sign-out", "Sign out", async (b) => {
        await act(b, async () => {
          await api.signOut();
          await refreshStatus(true);
        });
      }),
    ),
  );
  mount(app, header, h("div", { class: "layout" }, sidebar(), h("section", { id: "content", class: "content" })), footer());
  void drawContent();
}

function button(id: string, label: string, onClick: (b: HTMLButtonElement) => void, cls = ""): HTMLButtonElement {
  const b = h("button", { id, type: "button", class: cls }, label);
  b.addEventListener("click", () => onClick(b));
  return b;
}

function sidebar(): HTMLElement {
  const list = h(
    "ul",
    { id: "vault-list", class: "vaults" },
    ...vaults.map((v) => {
      const li = h(
        "li",
        { "data-vault-id": v.id, "data-vault-name": v.name },
        h("span", { class: "vault-name" }, v.name),
        v.role !== "owner" ? roleBadge(v.role) : null,
      );
      li.addEventListener("click", () =>
        void act(null, async () => {
          const my = ++nav;
          vault = v;
          search = "";
          await loadSecrets();
          if (my !== nav) return;
          view = { kind: "vault" };
          drawMain();
        }),
      );
      return li;
    }),
    ...refused.map((r) => {
      const li = h(
        "li",
        { "data-vault-id": r.id, class: "refused", title: r.reason },
        h("span", { class: "vault-name" }, `Vault ${r.id.slice(0, 8)}…`),
        h("span", { class: "badge refused" }, "failed verification"),
      );
      li.addEventListener("click", () => go({ kind: "refused", id: r.id }));
      return li;
    }),
    ...invitations.map((i) => {
      const li = h(
        "li",
        { "data-vault-id": i.vault_id, "data-invitation-from": i.from_identity, class: "invitation", title: `shared with you as ${i.role}` },
        h("span", { class: "vault-name" }, `From ${i.from_identity || "an unnamed account"}`),
        h("span", { class: "badge invitation" }, `invitation · ${i.role}`),
      );
      li.addEventListener("click", () => go({ kind: "invitation", id: i.vault_id }));
      return li;
    }),
  );
  const newName = h("input", { id: "new-vault-name", type: "text", placeholder: "Vault name", maxlength: 64 });
  const createForm = h(
    "form",
    { id: "new-vault-form", class: "inline-form", hidden: true },
    h("label", { class: "label", for: "new-vault-name" }, "New vault's name"),
    newName,
    h("div", { class: "row" }, h("button", { id: "create-vault", type: "submit", class: "primary small" }, "Create"), button("cancel-vault", "Cancel", () => (createForm.hidden = true), "small")),
  );
  createForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const b = createForm.querySelector<HTMLButtonElement>("#create-vault");
    void act(b, async () => {
      const v = await api.createVault(newName.value.trim());
      vault = v;
      view = { kind: "vault" };
      toast(`Created vault ${v.name}.`);
      await loadVaults();
      await loadSecrets();
      drawMain();
    });
  });
  const newBtn = button("new-vault", "+ New vault", () => {
    createForm.hidden = false;
    newName.focus();
  }, "ghost");
  return h(
    "nav",
    { class: "sidebar" },
    h("div", { class: "sidebar-head" }, h("h2", {}, "Vaults"), newBtn),
    createForm,
    vaults.length + refused.length + invitations.length === 0 ? h("p", { class: "empty" }, "No vaults yet.") : list,
  );
}

function footer(): HTMLElement {
  const s = status!;
  const bad = sync?.refused.length ?? 0;
  const line =
    sync?.error != null
      ? `The last check failed: ${sync.error}`
      : sync?.last_sync
        ? `Last full check ${ago(sync.last_sync)}: ${sync.vaults} vault${sync.vaults === 1 ? "" : "s"}, ${sync.secrets} secret${sync.secrets === 1 ? "" : "s"} verified` +
          (bad > 0 ? `; ${bad} vault${bad === 1 ? "" : "s"} failed verification` : "")
        : "Not synced yet";
  return h(
    "footer",
    { class: "statusbar" },
    h("span", { id: "sync-status", class: sync?.error || bad > 0 ? "error" : "" }, line),
    button("sync-refresh", "Refresh", (b) =>
      void act(b, async () => {
        let failed: unknown = null;
        try {
          sync = await api.syncNow();
        } catch (e) {
          // Locked or signed out underneath: act() follows the app there.
          if (e instanceof CommandError && GONE.includes(e.code)) throw e;
          failed = e;
          sync = await api.syncStatus();
        }
        await loadVaults();
        await loadSecrets();
        drawMain();
        if (failed) throw failed;
        if (sync.refused.length > 0) toast("A vault failed verification: the server sent data this account did not write.", "error");
        else toast("Everything is in sync and verified.");
      }), "small"),
    h("span", { class: "spacer" }),
    h("span", { id: "idle-lock", class: "muted" }, `Locks after ${minutes(s.idle_lock_seconds)} idle`),
  );
}

/** Shows another screen; a message about the last one goes with it. */
function go(v: View): void {
  nav++;
  view = v;
  hideToast();
  void drawContent();
}

/** Highlights the open vault in the sidebar (none on the sessions screen). */
function markSelected(): void {
  const id = view.kind === "sessions" ? null : view.kind === "refused" || view.kind === "invitation" ? view.id : vault?.id;
  document.querySelectorAll<HTMLElement>("#vault-list li").forEach((li) => {
    li.classList.toggle("selected", li.dataset.vaultId === id);
  });
}

async function drawContent(): Promise<void> {
  const content = document.getElementById("content");
  if (!content) return;
  content.dataset.view = view.kind;
  markSelected();
  switch (view.kind) {
    case "refused":
      return drawRefused(content, view.id);
    case "invitation":
      return drawInvitation(content, view.id);
    case "sessions":
      return drawSessions(content);
    case "vault":
      return drawVault(content);
    case "secret":
      return drawSecret(content, view.name);
    case "edit":
      return drawEdit(content, view.name);
    case "history":
      return drawHistory(content, view.name);
    case "add":
      return drawAdd(content);
  }
}

// ------------------------------------------------------------------ vault

function drawVault(content: HTMLElement): void {
  if (!vault) {
    mount(content, h("div", { class: "placeholder" }, h("h2", {}, "No vault"), h("p", {}, "Create a vault to keep secrets in it.")));
    return;
  }
  const v = vault;
  const canWrite = v.role !== "viewer";
  const canManage = v.role === "owner";
  const title = h("h2", { id: "vault-title" }, v.name);
  const renameInput = h("input", { id: "rename-vault-name", type: "text", value: v.name, maxlength: 64 });
  const renameForm = h(
    "form",
    { id: "rename-vault-form", class: "inline-form wide", hidden: true },
    h("label", { class: "label", for: "rename-vault-name" }, "New name"),
    renameInput,
    h("button", { id: "save-vault-name", type: "submit", class: "primary small" }, "Rename"),
    button("cancel-rename", "Cancel", () => (renameForm.hidden = true), "small"),
  );
  renameForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void act(renameForm.querySelector("button"), async () => {
      vault = await api.renameVault(v.id, renameInput.value.trim());
      toast(`Renamed to ${vault.name}.`);
      await loadVaults();
      drawMain();
    });
  });
  const confirmInput = h("input", { id: "delete-vault-confirm", type: "text", placeholder: v.name, autocomplete: "off" });
  const confirmBtn = h("button", { id: "confirm-delete-vault", type: "submit", class: "danger small", disabled: true }, "Delete vault");
  confirmInput.addEventListener("input", () => (confirmBtn.disabled = confirmInput.value !== v.name));
  const deleteForm = h(
    "form",
    { id: "delete-vault-form", class: "confirm", hidden: true },
    h("p", {}, `Deleting ${v.name} deletes its ${secrets.length} secret${secrets.length === 1 ? "" : "s"} and their history, on every device. Type the vault's name to confirm.`),
    h("div", { class: "row" }, confirmInput, confirmBtn, button("cancel-delete", "Cancel", () => (deleteForm.hidden = true), "small")),
  );
  deleteForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void act(confirmBtn, async () => {
      await api.deleteVault(v.id);
      toast(`Deleted vault ${v.name}.`);
      vault = null;
      await loadVaults();
      await loadSecrets();
      drawMain();
    });
  });

  const searchInput = h("input", { id: "search", type: "search", placeholder: "Search names", value: search, spellcheck: false });
  const list = h("ul", { id: "secret-list", class: "secrets" });
  const count = h("span", { class: "muted", id: "secret-count" });
  const fill = () => {
    const q = search.trim().toLowerCase();
    const shown = secrets.filter((s) => s.name.toLowerCase().includes(q));
    count.textContent = q ? `${shown.length} of ${secrets.length}` : `${secrets.length} secret${secrets.length === 1 ? "" : "s"}`;
    mount(
      list,
      ...shown.map((s) => {
        const li = h(
          "li",
          { "data-secret-name": s.name, tabindex: 0 },
          h("span", { class: "secret-name" }, s.name),
          h("span", { class: "meta" }, `rev ${s.revision} · ${when(s.updated_at)}`),
        );
        li.addEventListener("click", () => go({ kind: "secret", name: s.name }));
        li.addEventListener("keydown", (e) => e.key === "Enter" && go({ kind: "secret", name: s.name }));
        return li;
      }),
    );
    if (secrets.length > 0 && shown.length === 0) list.append(h("li", { class: "empty" }, "No secret matches."));
  };
  searchInput.addEventListener("input", () => {
    search = searchInput.value;
    fill();
  });
  fill();

  mount(
    content,
    h(
      "div",
      { class: "content-head" },
      h("div", { class: "title-row" }, title, roleBadge(v.role)),
      h(
        "div",
        { class: "row" },
        canManage ? button("rename-vault", "Rename", () => {
          renameForm.hidden = false;
          renameInput.select();
        }, "small") : null,
        canManage ? button("delete-vault", "Delete…", () => {
          deleteForm.hidden = false;
          confirmInput.focus();
        }, "small danger-outline") : null,
      ),
    ),
    renameForm,
    deleteForm,
    h("div", { class: "toolbar" }, searchInput, count, h("span", { class: "spacer" }), canWrite ? button("add-secret", "+ Add secret", () => go({ kind: "add" }), "primary") : null),
    secrets.length === 0 ? h("p", { class: "empty" }, "This vault has no secrets yet.") : list,
  );
}

// ------------------------------------------------------ refused vault

function drawRefused(content: HTMLElement, id: string): void {
  const r = refused.find((x) => x.id === id);
  if (!r) {
    go({ kind: "vault" });
    return;
  }
  mount(
    content,
    h("div", { class: "crumbs" }, back()),
    h("div", { class: "content-head" }, h("h2", { id: "refused-title" }, "A vault failed verification")),
    h(
      "p",
      {},
      "The server sent this vault's data, but it is not what this account wrote: its key, name or revision does not verify. " +
        "Nothing from it is shown or used on this device. Refresh checks it again.",
    ),
    h("dl", { class: "facts wide" }, h("dt", {}, "Vault id"), h("dd", { id: "refused-id" }, r.id), h("dt", {}, "Refused"), h("dd", { id: "refused-reason" }, r.reason)),
  );
}

// ------------------------------------------------------------ invitation

/** An invitation: the sender's safety number, computed on the Rust side
 * from the keys it would trust, next to this account's own; the person
 * compares them with the sender out of band, then trusts or declines. */
async function drawInvitation(content: HTMLElement, id: string): Promise<void> {
  const inv = invitations.find((x) => x.vault_id === id);
  if (!inv) {
    go({ kind: "vault" });
    return;
  }
  const my = nav;
  const head = h(
    "div",
    { class: "content-head" },
    h("h2", { id: "invitation-title" }, `${inv.from_identity || "An unnamed account"} shared a vault with you`),
  );
  const intro = h(
    "p",
    {},
    `You would be ${inv.role === "admin" || inv.role === "owner" || inv.role === "editor" ? "an" : "a"} ${inv.role} of it. ` +
      "Nothing of it is opened until you have checked that the keys the server shows for the sender are really theirs: " +
      "compare safety numbers with them in person or on a call, not by a message the server could change.",
  );
  const declineForm = h(
    "form",
    { id: "decline-form", class: "confirm", hidden: true },
    h("p", {}, `Decline, and stop ${inv.from_identity || "this account"} from sharing vaults with you again?`),
    h(
      "div",
      { class: "row" },
      h("button", { id: "confirm-decline", type: "submit", class: "danger small" }, "Decline"),
      button("cancel-decline", "Cancel", () => (declineForm.hidden = true), "small"),
    ),
  );
  declineForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void act(declineForm.querySelector("button"), async () => {
      await api.declineInvitation(inv.vault_id);
      toast(`Declined the invitation from ${inv.from_identity || "an unnamed account"}.`);
      view = { kind: "vault" };
      sync = await api.syncNow().catch(() => api.syncStatus());
      await loadVaults();
      await loadSecrets();
      drawMain();
    });
  });
  const decline = button("decline-invitation", "Decline…", () => (declineForm.hidden = false), "small");
  const body = h("div", { id: "invitation-check" }, h("p", { class: "muted" }, "Checking the sender's keys…"));
  mount(content, h("div", { class: "crumbs" }, back()), head, intro, body, h("div", { class: "row" }, decline), declineForm);
  if (!inv.from_identity) {
    mount(body, h("p", { class: "error" }, "The server does not say who sent it, so it cannot be verified. Decline it, or ask the sender to share it again."));
    return;
  }
  try {
    const c = await api.checkIdentity(inv.from_identity);
    if (my !== nav) return;
    const trust = button("trust-sharer", `The numbers match: trust ${c.identity}`, (b) =>
      void act(b, async () => {
        await api.trustIdentity(c.identity, c.safety_number);
        toast(`${c.identity} is verified.`);
        // Check everything again: the vault now opens, and the status bar
        // counts it.
        sync = await api.syncNow().catch(() => api.syncStatus());
        await loadVaults();
        const opened = vaults.find((v) => v.id === inv.vault_id);
        if (opened) vault = opened;
        view = { kind: "vault" };
        await loadSecrets();
        drawMain();
      }),
      "primary",
    );
    const changed = c.status === "changed" || c.status === "downgrade";
    mount(
      body,
      h(
        "dl",
        { class: "facts wide" },
        h("dt", {}, "Their safety number"),
        h("dd", {}, h("code", { id: "their-safety-number", class: "safety" }, c.safety_number)),
        h("dt", {}, "Your safety number"),
        h("dd", {}, h("code", { id: "own-safety-number", class: "safety" }, c.own_safety_number)),
        h("dt", {}, "Status"),
        h("dd", { id: "identity-status" }, c.status),
      ),
      changed
        ? h("p", { class: "error" }, `The keys of ${c.identity} are not the ones you verified before. Compare the new number with them before you trust it.`)
        : h("p", { class: "hint" }, `Ask ${c.identity} to read you the safety number their app shows for you (or run zsm whoami --fingerprint) and compare both.`),
      h("div", { class: "row" }, trust),
    );
  } catch (e) {
    if (e instanceof CommandError && GONE.includes(e.code)) {
      await refreshStatus(true);
      return;
    }
    if (my === nav) mount(body, h("p", { id: "invitation-error", class: "error" }, errorText(e)));
  }
}

// ----------------------------------------------------------------- secret

function back(): HTMLButtonElement {
  return button("back", "← Back", () => go({ kind: "vault" }), "link");
}

function drawSecret(content: HTMLElement, name: string): void {
  const v = vault!;
  const s = secrets.find((x) => x.name === name);
  if (!s) {
    go({ kind: "vault" });
    return;
  }
  const valueBox = h("code", { id: "revealed-value", class: "value masked" }, "••••••••••••••••");
  let shown = false;
  const reveal = button("reveal", "Reveal", (b) =>
    void act(b, async () => {
      if (shown) {
        valueBox.textContent = "••••••••••••••••";
        valueBox.className = "value masked";
        b.textContent = "Reveal";
        shown = false;
        return;
      }
      const r = await api.revealSecret(v.id, name);
      valueBox.textContent = r.value;
      valueBox.className = "value";
      b.textContent = "Hide";
      shown = true;
    }),
  );
  const copy = button("copy", "Copy", (b) =>
    void act(b, async () => {
      const secs = await api.copySecret(v.id, name);
      toast(`Copied. The clipboard is cleared in ${secs} s.`);
    }),
  );
  const canWrite = v.role !== "viewer";
  const del = h("form", { id: "delete-secret-form", class: "confirm", hidden: true },
    h("p", {}, `Delete ${name} and its history?`),
    h("div", { class: "row" }, h("button", { id: "confirm-delete-secret", type: "submit", class: "danger small" }, "Delete"), button("cancel-delete-secret", "Cancel", () => (del.hidden = true), "small")),
  );
  del.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void act(del.querySelector("button"), async () => {
      await api.deleteSecret(v.id, name);
      await loadSecrets();
      go({ kind: "vault" });
      toast(`Deleted ${name}.`);
    });
  });
  mount(
    content,
    h("div", { class: "crumbs" }, back(), h("span", { class: "muted" }, v.name)),
    h("div", { class: "content-head" }, h("h2", { id: "secret-title" }, name)),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Revision"),
      h("dd", { id: "secret-revision" }, String(s.revision)),
      h("dt", {}, "Updated"),
      h("dd", {}, when(s.updated_at)),
    ),
    h("div", { class: "value-row" }, valueBox),
    h(
      "div",
      { class: "row" },
      reveal,
      copy,
      canWrite ? button("edit", "Edit", () => go({ kind: "edit", name }), "") : null,
      button("history", "History", () => go({ kind: "history", name })),
      h("span", { class: "spacer" }),
      canWrite ? button("delete-secret", "Delete…", () => (del.hidden = false), "danger-outline") : null,
    ),
    del,
  );
}

function valueEditor(initial: string): { box: HTMLElement; value: HTMLTextAreaElement } {
  const value = h("textarea", { id: "secret-value", rows: 4, spellcheck: false, autocomplete: "off" });
  value.value = initial;
  const alphabet = h(
    "select",
    { id: "gen-alphabet" },
    ...["alnum", "symbols", "alpha", "digits", "hex"].map((a) => h("option", { value: a }, a)),
  );
  const length = h("input", { id: "gen-length", type: "number", min: 1, max: 4096, value: 32 });
  const gen = button("generate", "Generate", (b) =>
    void act(b, async () => {
      value.value = await api.generate(alphabet.value, Number(length.value));
    }),
  );
  const box = h(
    "div",
    { class: "generator" },
    field("Value", value),
    h("div", { class: "row gen-row" }, h("span", { class: "label" }, "Generator"), alphabet, length, h("span", { class: "muted" }, "characters"), gen),
  );
  return { box, value };
}

function drawAdd(content: HTMLElement): void {
  const v = vault!;
  const name = h("input", { id: "secret-name", type: "text", maxlength: 256, spellcheck: false, autocomplete: "off" });
  const { box, value } = valueEditor("");
  const save = h("button", { id: "save-secret", type: "submit", class: "primary" }, "Save");
  const form = h(
    "form",
    { id: "add-form", class: "editor" },
    h("div", { class: "crumbs" }, back(), h("span", { class: "muted" }, v.name)),
    h("h2", {}, "Add a secret"),
    field("Name", name, "Shown in lists; encrypted like the value."),
    box,
    h("div", { class: "actions" }, save),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void act(save, async () => {
      const s = await api.saveSecret(v.id, name.value, value.value, null);
      value.value = "";
      await loadSecrets();
      go({ kind: "secret", name: s.name });
      toast(`Saved ${s.name} (revision ${s.revision}).`);
    });
  });
  mount(content, form);
  name.focus();
}

async function drawEdit(content: HTMLElement, name: string): Promise<void> {
  const v = vault!;
  const my = nav;
  let current;
  try {
    current = await api.revealSecret(v.id, name);
  } catch (e) {
    toast(errorText(e), "error");
    if (my === nav) go({ kind: "secret", name });
    return;
  }
  if (my !== nav) return;
  const { box, value } = valueEditor(current.value);
  const save = h("button", { id: "save-secret", type: "submit", class: "primary" }, "Save as new revision");
  const form = h(
    "form",
    { id: "edit-form", class: "editor" },
    h("div", { class: "crumbs" }, back(), h("span", { class: "muted" }, v.name)),
    h("h2", {}, `Edit ${name}`),
    h("p", { class: "muted" }, `Revision ${current.revision}. Saving keeps this one in the history.`),
    box,
    h("div", { class: "actions" }, button("cancel-edit", "Cancel", () => go({ kind: "secret", name })), save),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void act(save, async () => {
      const s = await api.saveSecret(v.id, name, value.value, current.revision);
      value.value = "";
      await loadSecrets();
      go({ kind: "secret", name });
      toast(`Saved ${name} as revision ${s.revision}.`);
    });
  });
  mount(content, form);
  value.focus();
}

async function drawHistory(content: HTMLElement, name: string): Promise<void> {
  const v = vault!;
  const my = nav;
  let revs: Revision[];
  try {
    revs = await api.history(v.id, name);
  } catch (e) {
    toast(errorText(e), "error");
    if (my === nav) go({ kind: "secret", name });
    return;
  }
  if (my !== nav) return;
  const canWrite = v.role !== "viewer";
  mount(
    content,
    h("div", { class: "crumbs" }, button("back", "← Back", () => go({ kind: "secret", name }), "link"), h("span", { class: "muted" }, `${v.name} / ${name}`)),
    h("h2", {}, `History of ${name}`),
    h(
      "ul",
      { id: "history-list", class: "history" },
      ...revs.map((r) =>
        h(
          "li",
          { "data-revision": r.revision },
          h("span", { class: "rev" }, `Revision ${r.revision}`),
          h("span", { class: "meta" }, when(r.updated_at)),
          r.current
            ? h("span", { class: "badge current" }, "current")
            : canWrite
              ? button(`restore-${r.revision}`, "Restore", (b) =>
                  void act(b, async () => {
                    const s = await api.restore(v.id, name, r.revision);
                    await loadSecrets();
                    go({ kind: "secret", name });
                    toast(`Restored revision ${r.revision} as revision ${s.revision}.`);
                  }), "small restore")
              : null,
        ),
      ),
    ),
  );
}

// --------------------------------------------------------------- sessions

async function drawSessions(content: HTMLElement): Promise<void> {
  const my = nav;
  let list: Session[];
  try {
    list = await api.listSessions();
  } catch (e) {
    toast(errorText(e), "error");
    return;
  }
  if (my !== nav) return;
  list.sort((a, b) => Number(b.current) - Number(a.current) || b.last_used_at.localeCompare(a.last_used_at));
  mount(
    content,
    h("div", { class: "crumbs" }, back()),
    h("h2", {}, "Sessions"),
    h("p", { class: "muted" }, "Every device signed in to this account. Revoking one ends it at once: its next request is refused."),
    h(
      "table",
      { id: "session-list", class: "sessions" },
      h("thead", {}, h("tr", {}, h("th", {}, "Device"), h("th", {}, "Address"), h("th", {}, "Signed in"), h("th", {}, "Last used"), h("th", {}, ""))),
      h(
        "tbody",
        {},
        ...list.map((s) =>
          h(
            "tr",
            { "data-session-id": s.id, class: s.current ? "current" : "" },
            h("td", {}, s.device_label ?? "unnamed device", s.current ? h("span", { class: "badge current" }, "this device") : null),
            h("td", {}, s.client_addr ?? "—"),
            h("td", {}, when(s.created_at)),
            h("td", {}, when(s.last_used_at)),
            h(
              "td",
              {},
              s.current
                ? null
                : button(`revoke-${s.id}`, "Revoke", (b) =>
                    void act(b, async () => {
                      await api.revokeSession(s.id);
                      go({ kind: "sessions" });
                      toast("Session revoked.");
                    }), "small danger-outline revoke"),
            ),
          ),
        ),
      ),
    ),
  );
}

// ------------------------------------------------------------ idle & poll

// Activity in the window restarts the idle-lock timer in Rust (at most
// every 10 s); the status poll notices when Rust locked by itself.
let lastTouch = 0;
for (const ev of ["keydown", "mousedown", "mousemove", "wheel"] as const) {
  window.addEventListener(ev, () => {
    if (status?.phase !== "unlocked") return;
    const now = Date.now();
    if (now - lastTouch > 10_000) {
      lastTouch = now;
      void api.touch().catch(() => {});
    }
  }, { passive: true });
}

window.setInterval(() => {
  void refreshStatus().catch(() => {});
}, 2000);

void refreshStatus(true);
