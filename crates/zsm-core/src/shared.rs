//! Opening a shared vault (docs/crypto.md §8–§10), without any I/O: the
//! membership log replayed from its first entry and checked against what
//! this device remembers, the trust anchor, this account's grant (version 2:
//! signed by an owner or admin of the log, sealed with the KEM this
//! account's key record calls for) checked against the log's key commitment,
//! the chain of older keys, and the signed manifest. Nothing about a vault's
//! members, keys or contents is taken on the server's word.
//!
//! The client fetches the rows (the log, the grant, the chain, the manifest,
//! the members' verified key records) and calls [`open`]; what it returns is
//! everything reading and writing the vault needs: the replayed log, the key
//! of every generation this account can reach, and the manifest the
//! listing must match ([`check_listing`]).

use std::collections::BTreeMap;

use uuid::Uuid;
use zeroize::Zeroizing;

use crate::bundle::AccountKeys;
use crate::grant::{self, Grant, GrantV2, PrivateKey};
use crate::manifest::{self, ManifestError};
use crate::memberlog::{self, Head, Invitation, LogError, Op};
use crate::trust::{Fingerprint, Identity};

/// Why a shared vault was refused. [`SharedError::is_rollback`] says whether
/// the server served something older than this device saw; everything else
/// is tampering.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum SharedError {
    /// The membership log.
    #[error("membership log: {0}")]
    Log(LogError),
    /// This account's grant or the vault keys.
    #[error("grant: {0}")]
    Grant(String),
    /// The manifest.
    #[error("manifest: {0}")]
    Manifest(ManifestError),
}

impl SharedError {
    /// The server served an older log or manifest than this device saw.
    pub fn is_rollback(&self) -> bool {
        match self {
            SharedError::Log(e) => e.is_rollback(),
            SharedError::Manifest(e) => e.is_rollback(),
            SharedError::Grant(_) => false,
        }
    }
}

fn grant_err(what: impl std::fmt::Display) -> SharedError {
    SharedError::Grant(what.to_string())
}

/// This account's grant of a vault, as the server stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantRow {
    /// The member (this account).
    pub user_id: Uuid,
    /// The role the grant gives.
    pub role: String,
    /// `base64(enc || ciphertext)`.
    pub sealed_key: String,
    /// Who signed.
    pub granted_by: Uuid,
    /// `base64(signature)`.
    pub signature: String,
    /// The key generation sealed.
    pub key_generation: u64,
    /// 1 (what a vault's creator gave itself before key generations) or 2.
    pub grant_version: u32,
    /// Version 2: the KEM.
    pub kem_id: Option<u16>,
}

/// What the server sent about one vault, and what this device remembers.
pub struct Inputs<'a> {
    /// The vault.
    pub vault_id: Uuid,
    /// The vault row's revision.
    pub revision: u64,
    /// The membership log rows, parsed ([`memberlog::parse_row`]).
    pub log: &'a [memberlog::Signed],
    /// The verified key records of the people the log names.
    pub keys: &'a [Identity],
    /// This account's grant.
    pub grant: &'a GrantRow,
    /// The chain rows: generation g → the key of g under the key of g+1.
    pub chain: &'a [(u64, String)],
    /// The newest manifest, parsed ([`manifest::parse_row`]).
    pub manifest: Option<&'a manifest::Signed>,
    /// The head of the log this device last accepted.
    pub remembered_head: Head,
    /// The highest manifest this device verified.
    pub manifest_seen: manifest::Seen,
    /// This account.
    pub self_id: Uuid,
    /// Its fingerprint (from its own bundle).
    pub self_fp: Fingerprint,
    /// Whether this account pinned (user, fingerprint).
    pub pinned: &'a dyn Fn(Uuid, &Fingerprint) -> bool,
}

/// A shared vault opened.
pub struct Opened {
    /// The replayed log.
    pub log: memberlog::State,
    /// This account's role, as the log has it.
    pub role: String,
    /// The newest generation (writes use it).
    pub generation: u64,
    /// The key of every generation this account can reach, each checked
    /// against its commitment.
    pub keys: BTreeMap<u64, Zeroizing<[u8; 32]>>,
    /// The manifest verified.
    pub manifest: manifest::Signed,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "shared vault {} (generation {}, role {}, keys redacted)",
            self.log.vault_id(),
            self.generation,
            self.role
        )
    }
}

/// What opening a vault established.
#[derive(Debug)]
pub enum Outcome {
    /// The vault is open.
    Open(Box<Opened>),
    /// The log is valid but the member who added this account is not pinned
    /// (or the log does not name this account at all, under a grant somebody
    /// else made): an invitation, never opened or written to.
    Invitation {
        /// Who invited, as the log (or the grant) says.
        invitation: Invitation,
        /// The role the log (or the grant) gives.
        role: String,
    },
}

/// Opens a shared vault from what the server sent, or says it is an
/// invitation. Every check of docs/crypto.md §8–§10 is applied, in order:
/// the log ([`memberlog::open`]: rollback, every replay rule, fork, the
/// trust anchor), the grant (this account's role and the current
/// generation; version 2 signed by an owner or admin of the log since the
/// generation began, sealed with X-Wing if this account has an X-Wing key),
/// the key against the log's commitment, the chain of older keys, and the
/// manifest (verified against the log, no older than the one seen, naming
/// the vault row's revision). Returns what [`check_listing`] and the
/// writers need; the caller then remembers the new log head and manifest.
pub fn open(inp: &Inputs<'_>, keys: &AccountKeys) -> Result<Outcome, SharedError> {
    let me = inp.self_id;
    let g = inp.grant;
    let (log, _) = match memberlog::open(
        inp.vault_id,
        inp.log,
        inp.keys,
        &inp.remembered_head,
        me,
        &inp.self_fp,
        inp.pinned,
    ) {
        Ok(ok) => ok,
        Err(LogError::Invitation(invitation)) => {
            // Signed by a member whose key this account has not verified:
            // the log says who. The role is the one the log gives.
            let log = memberlog::replay(inp.vault_id, inp.log, inp.keys).map_err(SharedError::Log)?;
            let role = log.member(me).map_or_else(|| g.role.clone(), |m| m.role.clone());
            return Ok(Outcome::Invitation { invitation, role });
        }
        Err(LogError::NotAMember) if g.granted_by != me => {
            // A grant somebody made without the log naming this account:
            // it can only ever be an invitation, to decline.
            let invitation = Invitation {
                by: g.granted_by,
                ..Invitation::default()
            };
            return Ok(Outcome::Invitation {
                invitation,
                role: g.role.clone(),
            });
        }
        Err(e) => return Err(SharedError::Log(e)),
    };
    let member = log.member(me).expect("the anchor checked membership").clone();

    // The grant: this account's, for its logged role and the current
    // generation.
    let generation = log.generation();
    if g.user_id != me || g.role != member.role {
        return Err(grant_err(format!(
            "the grant gives role {:?}, the log {:?}",
            g.role, member.role
        )));
    }
    if g.key_generation != generation {
        return Err(grant_err(format!(
            "the grant is for key generation {}, the log is at {generation}",
            g.key_generation
        )));
    }
    let key = open_grant(inp, &log, keys)?;
    // The key must be the one the members committed to in the log: a key
    // the server chose never is, however it was sealed or signed.
    log.check_vault_key(generation, &key).map_err(grant_err)?;
    let mut chain = grant::Chain {
        vault_id: inp.vault_id,
        wrapped: BTreeMap::new(),
        commitments: log.commitments(),
    };
    for (gen_, w) in inp.chain {
        if chain.wrapped.insert(*gen_, w.clone()).is_some() {
            return Err(grant_err(format!("two older keys for generation {gen_}")));
        }
    }
    let vault_keys = chain.keys(generation, &key, 1).map_err(grant_err)?;

    // The manifest: signed by a writer of the log, no older than the one
    // this device saw, naming the vault row's revision.
    let m = inp
        .manifest
        .ok_or_else(|| SharedError::Manifest(ManifestError::Malformed("a membership log without a manifest".into())))?;
    verify_manifest(m, &log, inp.log, inp.keys, &inp.manifest_seen)?;
    manifest::check_rollback(m, &inp.manifest_seen).map_err(SharedError::Manifest)?;
    if m.manifest.meta_revision != inp.revision {
        return Err(SharedError::Manifest(ManifestError::MetaRevision {
            got: inp.revision,
            want: m.manifest.meta_revision,
        }));
    }
    Ok(Outcome::Open(Box::new(Opened {
        log,
        role: member.role,
        generation,
        keys: vault_keys,
        manifest: m.clone(),
    })))
}

/// Checks a manifest against the replayed log ([`manifest::verify`]), with
/// one allowance for leaves (docs/crypto.md §10): a manifest made stale only
/// by members leaving (and others being added) is still the vault's
/// manifest if each leave of its own signer names its hash (the leaver's
/// last manifest, bound into the entry the leaver signed) or this device
/// verified exactly this manifest before. A leave is signed by the member
/// who leaves, who can no longer sign a manifest, so until an owner or
/// admin rotates the key (and signs a new one) the manifest before the
/// leave stands; a removal, a role change or a rotation is always signed
/// together with a new manifest. Anything the member who left signs
/// afterwards has another hash and stays refused.
pub fn verify_manifest(
    m: &manifest::Signed,
    log: &memberlog::State,
    rows: &[memberlog::Signed],
    keys: &[Identity],
    seen: &manifest::Seen,
) -> Result<(), SharedError> {
    let err = match manifest::verify(m, log) {
        Err(e @ ManifestError::Stale { .. }) => e,
        other => return other.map_err(SharedError::Manifest),
    };
    let at = m.manifest.log_seq;
    if at == 0 || at > rows.len() as u64 {
        return Err(SharedError::Manifest(err));
    }
    let hash = m.hash();
    let remembered = seen.version != 0 && m.seen() == *seen;
    for r in &rows[at as usize..] {
        match r.entry.op {
            Op::Add => {}
            Op::Leave if r.entry.subject != m.signer || r.entry.commitment == hash || remembered => {}
            _ => return Err(SharedError::Manifest(err)),
        }
    }
    let then = memberlog::replay(log.vault_id(), &rows[..at as usize], keys).map_err(SharedError::Log)?;
    manifest::verify(m, &then).map_err(SharedError::Manifest)
}

/// Checks this account's grant and opens the vault key it seals.
fn open_grant(
    inp: &Inputs<'_>,
    log: &memberlog::State,
    keys: &AccountKeys,
) -> Result<Zeroizing<[u8; 32]>, SharedError> {
    let (me, g) = (inp.self_id, inp.grant);
    match g.grant_version {
        1 => {
            // What a vault's creator gave itself before key generations
            // existed (generation 1, X25519), kept when the vault was given
            // its log.
            if g.granted_by != me || g.key_generation != 1 || g.kem_id.is_some() {
                return Err(grant_err("a version 1 grant not made by this account for generation 1"));
            }
            let v1 = Grant {
                vault_id: inp.vault_id,
                user_id: me,
                granted_by: me,
                role: g.role.clone(),
                sealed_key: g.sealed_key.clone(),
            };
            v1.verify(&g.signature, &keys.ed25519_public()).map_err(grant_err)?;
            grant::open_vault_key(keys.x25519_private(), inp.vault_id, me, &g.sealed_key).map_err(grant_err)
        }
        2 => {
            let kem = g.kem_id.ok_or_else(|| grant_err("a version 2 grant without its KEM"))?;
            // A member with a hybrid key is never sealed to without it: the
            // server must not be able to strip the post-quantum half.
            grant::check_kem(kem, keys.xwing_seed().is_some()).map_err(grant_err)?;
            let signer = if g.granted_by == me {
                keys.ed25519_public()
            } else {
                granter_key(log, inp.log, g.granted_by)?
            };
            let v2 = GrantV2 {
                vault_id: inp.vault_id,
                user_id: me,
                granted_by: g.granted_by,
                role: g.role.clone(),
                generation: g.key_generation,
                kem,
                sealed_key: g.sealed_key.clone(),
            };
            v2.verify(&g.signature, &signer).map_err(grant_err)?;
            let private = match (kem, keys.xwing_seed()) {
                (grant::KEM_XWING, Some(seed)) => PrivateKey::XWing(seed),
                _ => PrivateKey::X25519(keys.x25519_private()),
            };
            grant::open_vault_key_v2(private, inp.vault_id, me, g.key_generation, &g.sealed_key).map_err(grant_err)
        }
        v => Err(grant_err(format!("grant version {v}"))),
    }
}

/// The key of a grant's signer: a member who was an owner or admin at some
/// entry since the current key generation began (only they can have sealed
/// its key to anybody).
pub fn granter_key(log: &memberlog::State, rows: &[memberlog::Signed], granter: Uuid) -> Result<[u8; 32], SharedError> {
    let start = rows
        .iter()
        .rev()
        .find(|r| matches!(r.entry.op, Op::Create | Op::Remove | Op::Rotate))
        .map_or(1, |r| r.entry.seq);
    let mut seq = log.head().seq;
    while seq >= start && seq > 0 {
        if let Ok((k, role)) = log.key_at(granter, seq)
            && (role == "owner" || role == "admin")
        {
            return Ok(k);
        }
        seq -= 1;
    }
    Err(grant_err(format!(
        "signed by {granter}, who was no owner or admin of the vault since its key generation began"
    )))
}

/// Checks a listing of the vault's secrets (id, revision, key generation)
/// and the vault row's revision against the opened manifest.
pub fn check_listing(o: &Opened, items: &[manifest::Item], meta_revision: u64) -> Result<(), SharedError> {
    manifest::check_listing(&o.manifest.manifest, items, meta_revision).map_err(SharedError::Manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::GrantError;

    struct Person {
        id: Uuid,
        name: &'static str,
        keys: AccountKeys,
    }

    impl Person {
        fn new(name: &'static str, xwing: bool) -> Person {
            let mut keys = AccountKeys::generate();
            if xwing {
                keys.add_xwing().unwrap();
            }
            Person {
                id: Uuid::new_v4(),
                name,
                keys,
            }
        }

        fn ident(&self) -> Identity {
            Identity {
                user_id: self.id,
                identity: format!("{}@example.com", self.name),
                ed25519_public: self.keys.ed25519_public(),
            }
        }

        fn fp(&self) -> Fingerprint {
            self.ident().fingerprint().unwrap()
        }
    }

    /// Alice creates a vault, adds Bob as an editor and rotates: two
    /// generations, the first chained under the second, and a manifest.
    struct Fixture {
        vault: Uuid,
        alice: Person,
        bob: Person,
        rows: Vec<memberlog::Signed>,
        key1: [u8; 32],
        key2: [u8; 32],
        chain: Vec<(u64, String)>,
        manifest: manifest::Signed,
    }

    fn fixture() -> Fixture {
        let vault = Uuid::new_v4();
        let (alice, bob) = (Person::new("alice", true), Person::new("bob", true));
        let (key1, key2) = ([1u8; 32], [2u8; 32]);
        let mut st = memberlog::State::new(vault, &[alice.ident(), bob.ident()]).unwrap();
        let mut rows = Vec::new();
        let mut push = |st: &mut memberlog::State, e: memberlog::Entry| {
            let s = memberlog::Signed::sign(e, &alice.keys.signing_key()).unwrap();
            st.apply(&s).unwrap();
            rows.push(s);
        };
        let e = st.next(
            Op::Create,
            alice.id,
            "owner",
            alice.fp(),
            grant::key_commitment(&key1, vault, 1),
            alice.id,
            1,
        );
        push(&mut st, e);
        let e = st.next(Op::Add, bob.id, "editor", bob.fp(), [0; 32], alice.id, 2);
        push(&mut st, e);
        let e = st.next(
            Op::Rotate,
            alice.id,
            "",
            Fingerprint::default(),
            grant::key_commitment(&key2, vault, 2),
            alice.id,
            3,
        );
        push(&mut st, e);
        let chain = vec![(1, grant::wrap_previous(&key2, vault, 1, &key1).unwrap())];
        let m = manifest::Manifest::next(None, &st, 1, &[]).unwrap();
        let manifest = manifest::Signed::sign(m, alice.id, &alice.keys.signing_key()).unwrap();
        Fixture {
            vault,
            alice,
            bob,
            rows,
            key1,
            key2,
            chain,
            manifest,
        }
    }

    /// Bob's grant of generation 2, sealed with `kem` to his keys and
    /// signed by `signer`.
    fn grant_for_bob(f: &Fixture, key: &[u8; 32], kem: u16, signer: &Person) -> GrantRow {
        let recipient = if kem == grant::KEM_XWING {
            grant::RecipientKey::XWing(f.bob.keys.xwing_public().unwrap())
        } else {
            grant::RecipientKey::X25519(f.bob.keys.x25519_public())
        };
        let (sealed, kem) = grant::seal_vault_key_v2(&recipient, f.vault, f.bob.id, 2, key).unwrap();
        let g = GrantV2 {
            vault_id: f.vault,
            user_id: f.bob.id,
            granted_by: signer.id,
            role: "editor".into(),
            generation: 2,
            kem,
            sealed_key: sealed,
        };
        GrantRow {
            user_id: f.bob.id,
            role: g.role.clone(),
            signature: g.sign(&signer.keys.signing_key()).unwrap(),
            sealed_key: g.sealed_key,
            granted_by: signer.id,
            key_generation: 2,
            grant_version: 2,
            kem_id: Some(kem),
        }
    }

    fn open_as_bob(
        f: &Fixture,
        g: &GrantRow,
        pinned: bool,
        head: Head,
        seen: manifest::Seen,
        revision: u64,
    ) -> Result<Outcome, SharedError> {
        let keys = [f.alice.ident(), f.bob.ident()];
        let alice_fp = f.alice.fp();
        let alice = f.alice.id;
        let pin = move |u: Uuid, fp: &Fingerprint| pinned && u == alice && *fp == alice_fp;
        let inp = Inputs {
            vault_id: f.vault,
            revision,
            log: &f.rows,
            keys: &keys,
            grant: g,
            chain: &f.chain,
            manifest: Some(&f.manifest),
            remembered_head: head,
            manifest_seen: seen,
            self_id: f.bob.id,
            self_fp: f.bob.fp(),
            pinned: &pin,
        };
        open(&inp, &f.bob.keys)
    }

    fn opened(r: Result<Outcome, SharedError>) -> Box<Opened> {
        match r {
            Ok(Outcome::Open(o)) => o,
            other => panic!("not opened: {other:?}"),
        }
    }

    #[test]
    fn a_member_opens_with_every_generation() {
        let f = fixture();
        let g = grant_for_bob(&f, &f.key2, grant::KEM_XWING, &f.alice);
        let o = opened(open_as_bob(&f, &g, true, Head::default(), manifest::Seen::default(), 1));
        assert_eq!((o.role.as_str(), o.generation), ("editor", 2));
        assert_eq!((*o.keys[&1], *o.keys[&2]), (f.key1, f.key2));
        check_listing(&o, &[], 1).unwrap();
        let hidden = [manifest::Item {
            id: Uuid::new_v4(),
            revision: 1,
            generation: 2,
        }];
        assert!(matches!(
            check_listing(&o, &hidden, 1),
            Err(SharedError::Manifest(ManifestError::Listing(_)))
        ));
        // What the device then remembers is accepted again.
        let again = open_as_bob(&f, &g, true, o.log.head(), o.manifest.seen(), 1);
        assert!(matches!(again, Ok(Outcome::Open(_))));
    }

    #[test]
    fn an_unpinned_inviter_is_an_invitation() {
        let f = fixture();
        let g = grant_for_bob(&f, &f.key2, grant::KEM_XWING, &f.alice);
        match open_as_bob(&f, &g, false, Head::default(), manifest::Seen::default(), 1) {
            Ok(Outcome::Invitation { invitation, role }) => {
                assert_eq!(
                    (invitation.by, invitation.seq, role.as_str()),
                    (f.alice.id, 2, "editor")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn keys_the_members_did_not_agree_on_are_refused() {
        let f = fixture();
        // Alice's signature over a key nobody committed to in the log.
        let g = grant_for_bob(&f, &[9u8; 32], grant::KEM_XWING, &f.alice);
        let e = open_as_bob(&f, &g, true, Head::default(), manifest::Seen::default(), 1).unwrap_err();
        assert!(e.to_string().contains("commitment"), "{e}");
        // A signer who is no member (the server's own key).
        let server = Person::new("server", false);
        let g = grant_for_bob(&f, &f.key2, grant::KEM_XWING, &server);
        let e = open_as_bob(&f, &g, true, Head::default(), manifest::Seen::default(), 1).unwrap_err();
        assert!(e.to_string().contains("no owner or admin"), "{e}");
        // The X25519-only seal to a member with an X-Wing key.
        let g = grant_for_bob(&f, &f.key2, grant::KEM_X25519, &f.alice);
        let e = open_as_bob(&f, &g, true, Head::default(), manifest::Seen::default(), 1).unwrap_err();
        assert_eq!(e, grant_err(GrantError::Downgrade));
        // Another role than the log's.
        let mut g = grant_for_bob(&f, &f.key2, grant::KEM_XWING, &f.alice);
        g.role = "admin".into();
        assert!(open_as_bob(&f, &g, true, Head::default(), manifest::Seen::default(), 1).is_err());
    }

    #[test]
    fn older_logs_and_manifests_are_rollbacks() {
        let f = fixture();
        let g = grant_for_bob(&f, &f.key2, grant::KEM_XWING, &f.alice);
        let head = Head { seq: 5, hash: [0; 32] };
        let e = open_as_bob(&f, &g, true, head, manifest::Seen::default(), 1).unwrap_err();
        assert!(e.is_rollback(), "{e}");
        let fork = Head { seq: 2, hash: [7; 32] };
        let e = open_as_bob(&f, &g, true, fork, manifest::Seen::default(), 1).unwrap_err();
        assert_eq!(e, SharedError::Log(LogError::Fork(2)));
        let seen = manifest::Seen {
            version: 2,
            hash: [0; 32],
        };
        let e = open_as_bob(&f, &g, true, Head::default(), seen, 1).unwrap_err();
        assert!(e.is_rollback(), "{e}");
        // A vault row whose revision the manifest does not name.
        let e = open_as_bob(&f, &g, true, Head::default(), manifest::Seen::default(), 2).unwrap_err();
        assert!(
            matches!(e, SharedError::Manifest(ManifestError::MetaRevision { .. })),
            "{e}"
        );
    }

    #[test]
    fn a_broken_chain_is_refused() {
        let mut f = fixture();
        let g = grant_for_bob(&f, &f.key2, grant::KEM_XWING, &f.alice);
        f.chain.clear();
        let e = open_as_bob(&f, &g, true, Head::default(), manifest::Seen::default(), 1).unwrap_err();
        assert_eq!(e, grant_err(GrantError::Chain(1)));
        f.chain = vec![(1, grant::wrap_previous(&f.key2, f.vault, 1, &[5; 32]).unwrap())];
        let e = open_as_bob(&f, &g, true, Head::default(), manifest::Seen::default(), 1).unwrap_err();
        assert_eq!(e, grant_err(GrantError::KeyCommitment(1)));
    }

    /// Carol, an editor, writes and then leaves naming her last manifest:
    /// it stays the vault's manifest for the others (until a rotation), and
    /// nothing else she signs is accepted after her leave.
    #[test]
    fn a_leave_keeps_only_the_leavers_last_manifest() {
        let mut f = fixture();
        let carol = Person::new("carol", true);
        let keys = [f.alice.ident(), f.bob.ident(), carol.ident()];
        let mut st = memberlog::replay(f.vault, &f.rows, &keys).unwrap();
        let add = st.next(Op::Add, carol.id, "editor", carol.fp(), [0; 32], f.alice.id, 4);
        let add = memberlog::Signed::sign(add, &f.alice.keys.signing_key()).unwrap();
        st.apply(&add).unwrap();
        f.rows.push(add);
        let m = manifest::Manifest::next(Some(&f.manifest), &st, 1, &[]).unwrap();
        let carols = manifest::Signed::sign(m, carol.id, &carol.keys.signing_key()).unwrap();
        let after_leave = |named: [u8; 32]| {
            let mut st = st.clone();
            let mut rows = f.rows.clone();
            let e = st.next(Op::Leave, carol.id, "", Fingerprint::default(), named, carol.id, 5);
            let e = memberlog::Signed::sign(e, &carol.keys.signing_key()).unwrap();
            st.apply(&e).unwrap();
            rows.push(e);
            (st, rows)
        };
        let none = manifest::Seen::default();

        let (st2, rows2) = after_leave(carols.hash());
        verify_manifest(&carols, &st2, &rows2, &keys, &none).unwrap();
        // Another manifest of hers, made after she left (at the last entry
        // she was a member at): its hash is not the one her leave names.
        let mut later = carols.manifest.clone();
        later.meta_revision = 2;
        let later = manifest::Signed::sign(later, carol.id, &carol.keys.signing_key()).unwrap();
        assert!(matches!(
            verify_manifest(&later, &st2, &rows2, &keys, &none),
            Err(SharedError::Manifest(ManifestError::Stale { .. }))
        ));

        // A leave naming no manifest: hers is stale, unless this device
        // verified exactly it before.
        let (st3, rows3) = after_leave([0; 32]);
        assert!(matches!(
            verify_manifest(&carols, &st3, &rows3, &keys, &none),
            Err(SharedError::Manifest(ManifestError::Stale { .. }))
        ));
        verify_manifest(&carols, &st3, &rows3, &keys, &carols.seen()).unwrap();
    }
}
