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
    /// The keys come with the account's key record, verified here: the
    /// account itself vouched that they are its own under this identity and
    /// user id. False for an account made before key records existed that
    /// has not logged in since. Neither says that the server did not make
    /// the account up; comparing fingerprints out of band does.
    pub signed: bool,
}

#[derive(Deserialize)]
struct LookupRow {
    user_id: Uuid,
    x25519_public: String,
    ed25519_public: String,
    key_record_version: Option<u32>,
    key_record_signature: Option<String>,
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
        let rec = keyrecord::Record::from_base64(r.user_id, &id, &r.x25519_public, &r.ed25519_public)
            .map_err(|e| tamper(format!("identity {id:?}: public keys: {e}")))?;
        let mut pk = PublicKeys {
            user_id: r.user_id,
            identity: id.clone(),
            x25519: rec.x25519,
            ed25519: rec.ed25519,
            signed: false,
        };
        if let Some(sig) = &r.key_record_signature {
            if r.key_record_version != Some(keyrecord::VERSION) {
                return Err(tamper(format!("identity {id:?}: key record of an unknown version")));
            }
            rec.verify(sig)
                .map_err(|e| tamper(format!("identity {id:?}: key record: {e}")))?;
            pk.signed = true;
        }
        Ok(pk)
    }
}
