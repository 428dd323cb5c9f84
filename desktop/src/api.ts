// The IPC commands of src-tauri/src/ipc.rs, typed. This is the whole of
// what the web view can ask of the Rust process; keys never come back.
import { invoke } from "@tauri-apps/api/core";

export interface AppError {
  code: string;
  message: string;
}

export type Phase = "signed_out" | "locked" | "unlocked";

export interface AppStatus {
  phase: Phase;
  server: string | null;
  identity: string | null;
  default_server: string;
  default_identity: string | null;
  idle_lock_seconds: number;
  clipboard_clear_seconds: number;
  lock_reason: string | null;
}

export interface KitInfo {
  server: string | null;
  identity: string | null;
}

export interface Vault {
  id: string;
  name: string;
  role: string;
  created_at: string;
}

/** A vault whose grant, key, name or revision did not verify: the server
 * sent something this account did not write. Its name is unknown. */
export interface RefusedVault {
  id: string;
  reason: string;
}

/** A vault another account shared with this one, from someone this
 * account has not verified: nothing of it is opened until the person
 * compares safety numbers and trusts the sender. */
export interface Invitation {
  vault_id: string;
  from_identity: string;
  from_user_id: string;
  role: string;
  at: string;
}

export interface VaultListing {
  vaults: Vault[];
  refused: RefusedVault[];
  invitations: Invitation[];
}

/** Another account's keys as the Rust side checked them; the safety
 * numbers are computed there. */
export interface IdentityCheck {
  identity: string;
  user_id: string;
  safety_number: string;
  status: "unverified" | "verified" | "tofu" | "changed" | "downgrade";
  own_safety_number: string;
}

export interface SecretSummary {
  name: string;
  revision: number;
  updated_at: string;
}

export interface RevealedSecret extends SecretSummary {
  value: string;
}

export interface Revision {
  revision: number;
  updated_at: string;
  current: boolean;
}

export interface Session {
  id: string;
  device_label: string | null;
  client_addr: string | null;
  created_at: string;
  last_used_at: string;
  expires_at: string;
  current: boolean;
}

export interface SyncStatus {
  last_sync: string | null;
  vaults: number;
  secrets: number;
  refused: RefusedVault[];
  error: string | null;
}

/** An IPC error as thrown by call(): code and message from Rust. */
export class CommandError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(cmd, args);
  } catch (e) {
    const err = e as Partial<AppError> | string;
    if (typeof err === "object" && err && typeof err.code === "string") {
      throw new CommandError(err.code, err.message ?? err.code);
    }
    throw new CommandError("ipc", String(e));
  }
}

export interface SignInForm {
  server: string;
  identity: string;
  password: string;
  secretKey?: string;
  kit?: string;
}

export const api = {
  appStatus: () => call<AppStatus>("app_status"),
  touch: () => call<void>("touch"),
  readKit: (text: string) => call<KitInfo>("read_kit", { text }),
  signIn: (form: SignInForm) => call<void>("sign_in", { form }),
  unlock: (password: string) => call<void>("unlock", { password }),
  lock: () => call<void>("lock"),
  signOut: () => call<void>("sign_out"),
  listVaults: () => call<VaultListing>("list_vaults"),
  createVault: (name: string) => call<Vault>("create_vault", { name }),
  renameVault: (vaultId: string, name: string) => call<Vault>("rename_vault", { vaultId, name }),
  deleteVault: (vaultId: string) => call<void>("delete_vault", { vaultId }),
  listSecrets: (vaultId: string) => call<SecretSummary[]>("list_secrets", { vaultId }),
  revealSecret: (vaultId: string, name: string) =>
    call<RevealedSecret>("reveal_secret", { vaultId, name }),
  copySecret: (vaultId: string, name: string) => call<number>("copy_secret", { vaultId, name }),
  saveSecret: (vaultId: string, name: string, value: string, expectedRevision: number | null) =>
    call<SecretSummary>("save_secret", { vaultId, name, value, expectedRevision }),
  deleteSecret: (vaultId: string, name: string) => call<void>("delete_secret", { vaultId, name }),
  history: (vaultId: string, name: string) => call<Revision[]>("secret_history", { vaultId, name }),
  restore: (vaultId: string, name: string, revision: number) =>
    call<SecretSummary>("restore_revision", { vaultId, name, revision }),
  generate: (alphabet: string, length: number) =>
    call<string>("generate_secret", { alphabet, length }),
  syncStatus: () => call<SyncStatus>("sync_status"),
  syncNow: () => call<SyncStatus>("sync_now"),
  listSessions: () => call<Session[]>("list_sessions"),
  revokeSession: (sessionId: string) => call<void>("revoke_session", { sessionId }),
  checkIdentity: (identity: string) => call<IdentityCheck>("check_identity", { identity }),
  trustIdentity: (identity: string, safetyNumber: string) =>
    call<IdentityCheck>("trust_identity", { identity, safetyNumber }),
  declineInvitation: (vaultId: string) => call<void>("decline_invitation", { vaultId }),
};
