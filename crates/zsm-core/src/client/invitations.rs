//! Invitations, the invitee's consent, and looking up another account's
//! public keys (docs/crypto.md §3 and §4, docs/security.md), as the Go SDK's
//! `invitations.go`.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::Client;
use crate::error::{Error, tamper};
use crate::keyrecord;

/// A grant of a vault membership to this account, signed by another user.
/// Nothing in it is verified: who the server says sent it, and what role it
/// gives. No key of it is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// The vault.
    pub vault_id: Uuid,
    /// The granting user, as the grant names them.
    pub from: Uuid,
    /// Their identity, as the server names it (empty if unknown).
    pub from_identity: String,
    /// The role the grant gives.
    pub role: String,
    /// When, RFC 3339 as the server sent it.
    pub at: String,
}

#[derive(Deserialize)]
struct InvitationRow {
    vault_id: Uuid,
    granted_by: Uuid,
    granted_by_identity: Option<String>,
}

/// Another account's published public keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeys {
    /// The account.
    pub user_id: Uuid,
    /// Its identity (normalized, as asked for).
    pub identity: String,
    /// Its X25519 public key.
    pub x25519: [u8; 32],
    /// Its Ed25519 public key.
    pub ed25519: [u8; 32],
    /// Its X-Wing public key (1216 bytes), from a version 2 key record;
    /// `None` otherwise.
    pub xwing: Option<Vec<u8>>,
    /// The version of the key record the keys came with: 2 (with the X-Wing
    /// key) or 1, or 0 for an account made before key records existed that
    /// has not logged in since.
    pub record_version: u32,
    /// The keys come with the account's key record, verified here: the
    /// account itself vouched that they are its own under this identity and
    /// user id. False for an account made before key records existed that
    /// has not logged in since. Neither says that the server did not make
    /// the account up; comparing fingerprints out of band does.
    pub signed: bool,
}

/// A published key row, as api.lookup_identity and api.vault_member_keys
/// return it.
#[derive(Deserialize)]
pub(crate) struct LookupRow {
    pub(crate) user_id: Uuid,
    #[serde(default)]
    pub(crate) identity: String,
    x25519_public: String,
    ed25519_public: String,
    key_record_version: Option<u32>,
    key_record_signature: Option<String>,
    #[serde(default)]
    xwing_public: Option<String>,
}

impl Client {
    /// Fills in who sent each invitation, as the server names them
    /// (api.invitations answers only for grants naming this account). A
    /// name the server does not give stays empty.
    pub(crate) async fn name_inviters(&self, inv: &mut [Invitation]) -> Result<(), Error> {
        let rows: Vec<InvitationRow> = self.rows(Method::GET, "/rpc/invitations", None, None).await?;
        for i in inv.iter_mut() {
            if let Some(name) = rows
                .iter()
                .find(|r| r.vault_id == i.vault_id && r.granted_by == i.from)
                .and_then(|r| r.granted_by_identity.clone())
            {
                i.from_identity = name;
            }
        }
        Ok(())
    }

    /// The grants other users sent this account.
    pub async fn invitations(&self) -> Result<Vec<Invitation>, Error> {
        Ok(self.list_vaults().await?.invitations)
    }

    /// Refuses the invitation to `vault_id`: the server deletes the grant
    /// and blocks its granter from granting this account anything again, in
    /// one transaction, until [`Client::allow_invitations_from`] lifts the
    /// block. Returns the declined invitation; [`Error::NotFound`] when
    /// there is no invitation to that vault (this account's own vaults
    /// cannot be declined). A server that blocks another user than the one
    /// who invited is [`Error::Tampered`].
    pub async fn decline_invitation(&self, vault_id: Uuid) -> Result<Invitation, Error> {
        let not_found = || Error::NotFound(format!("invitation to vault {vault_id}"));
        let inv = self
            .invitations()
            .await?
            .into_iter()
            .find(|i| i.vault_id == vault_id)
            .ok_or_else(not_found)?;
        let blocked: Option<Uuid> = match self
            .rest(
                Method::POST,
                "/rpc/decline_invitation",
                Some(&json!({ "vault_id": vault_id })),
                None,
            )
            .await
        {
            Err(Error::Rest { status: 404, .. }) => return Err(not_found()),
            other => other?,
        };
        if blocked != Some(inv.from) {
            return Err(tamper(format!(
                "vault {vault_id}: the server blocked another user than the one who invited"
            )));
        }
        Ok(inv)
    }

    /// Lifts this account's block of the user with `identity` (set by
    /// [`Client::decline_invitation`]), so that they may invite it again.
    /// Reports whether there was a block; [`Error::NotFound`] when no account
    /// has that identity.
    pub async fn allow_invitations_from(&self, identity: &str) -> Result<bool, Error> {
        let pk = self.lookup_identity(identity).await?;
        let rows: Vec<serde_json::Value> = self
            .rows(
                Method::DELETE,
                &format!("/grant_blocks?blocked_user_id=eq.{}", pk.user_id),
                None,
                Some("return=representation"),
            )
            .await?;
        Ok(!rows.is_empty())
    }

    /// Finds the account with exactly this identity (after normalization)
    /// and its public keys. The server answers one exact identity at a time
    /// and lists nobody. A key record that does not verify, keys that are
    /// not 32 bytes, or more than one account are [`Error::Tampered`]; no
    /// account is [`Error::NotFound`].
    pub async fn lookup_identity(&self, identity: &str) -> Result<PublicKeys, Error> {
        let id = crate::identity::normalize(identity).map_err(|e| Error::Invalid(format!("identity: {e}")))?;
        let rows: Vec<LookupRow> = self
            .rows(
                Method::POST,
                "/rpc/lookup_identity",
                Some(&json!({ "identity": id })),
                None,
            )
            .await?;
        let r = match rows.as_slice() {
            [] => return Err(Error::NotFound(format!("identity {id:?}"))),
            [r] => r,
            _ => {
                return Err(tamper(format!(
                    "identity {id:?}: the server named {} accounts",
                    rows.len()
                )));
            }
        };
        check_keys(r, &id)
    }
}

/// Checks a published key row for `identity` (normalized): the keys
/// well-formed, and its key record, if any, signed by its own Ed25519 key
/// over exactly these keys, this user id and this identity. Keys that name
/// a record version or an X-Wing key come with their record; without one
/// they are an account's from before records. Any failure is
/// [`Error::Tampered`].
pub(crate) fn check_keys(r: &LookupRow, id: &str) -> Result<PublicKeys, Error> {
    if r.key_record_signature.is_none() && (r.key_record_version.is_some() || r.xwing_public.is_some()) {
        return Err(tamper(format!("identity {id:?}: keys without their key record")));
    }
    let rec = keyrecord::Record::from_published(
        r.key_record_version.unwrap_or(keyrecord::V1),
        r.user_id,
        id,
        &r.x25519_public,
        &r.ed25519_public,
        r.xwing_public.as_deref(),
    )
    .map_err(|e| tamper(format!("identity {id:?}: public keys: {e}")))?;
    let mut pk = PublicKeys {
        user_id: r.user_id,
        identity: id.to_owned(),
        x25519: rec.x25519,
        ed25519: rec.ed25519,
        xwing: rec.xwing.clone(),
        record_version: 0,
        signed: false,
    };
    if let Some(sig) = &r.key_record_signature {
        rec.verify(sig)
            .map_err(|e| tamper(format!("identity {id:?}: key record: {e}")))?;
        pk.signed = true;
        pk.record_version = rec.version();
    }
    Ok(pk)
}
