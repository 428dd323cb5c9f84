//! A shared vault's membership log (docs/crypto.md §9), as the Go SDK's
//! `sdk/memberlog`: a hash-chained list of entries (create, add, change
//! role, remove, rotate, leave), each signed by a member who had the
//! authority to make it at that point of the chain.
//!
//! A client derives the member list, every role, the key generations and
//! their key commitments only by replaying the log from its first entry
//! ([`replay`], [`open`]); the server's tables of members are access
//! control, not something the client believes. Every refusal is a
//! [`LogError`] naming the rule, and [`LogError::is_tampered`] /
//! [`LogError::is_rollback`] give its class, as Go's error wrapping does.

use std::collections::{HashMap, HashSet};

use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::grant::{self, GrantError, ROLES};
use crate::trust::{Fingerprint, Identity, TrustError};

/// Size of an entry hash, a fingerprint and a commitment.
pub const HASH_SIZE: usize = 32;

const LABEL: &[u8] = b"zsm v1 vault-log";

/// The size of an entry without its role.
pub const FIXED_SIZE: usize = LABEL.len() + 1 + 16 + 8 + HASH_SIZE + 1 + 16 + 1 + 32 + 8 + HASH_SIZE + 16 + 8;

/// What an entry does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// The creator makes the vault; always and only seq 1.
    Create = 1,
    /// A member adds a non-member with a role.
    Add = 2,
    /// A member changes a member's role.
    ChangeRole = 3,
    /// A member removes a member; a new key generation.
    Remove = 4,
    /// An owner or admin makes a new key generation.
    Rotate = 5,
    /// A member leaves.
    Leave = 6,
}

impl Op {
    /// The op of a byte; `None` for an unknown one.
    pub fn from_byte(b: u8) -> Option<Op> {
        Some(match b {
            1 => Op::Create,
            2 => Op::Add,
            3 => Op::ChangeRole,
            4 => Op::Remove,
            5 => Op::Rotate,
            6 => Op::Leave,
            _ => return None,
        })
    }

    /// The ops that carry a role.
    fn has_role(self) -> bool {
        matches!(self, Op::Create | Op::Add | Op::ChangeRole)
    }

    /// The ops that name the subject's fingerprint.
    fn has_fingerprint(self) -> bool {
        matches!(self, Op::Create | Op::Add)
    }

    /// The ops that make a key generation and carry its commitment.
    fn new_generation(self) -> bool {
        matches!(self, Op::Create | Op::Remove | Op::Rotate)
    }
}

/// Why a log was refused. Every variant but [`LogError::Invitation`] and
/// [`LogError::NotAMember`] (which are not attacks) is of the class
/// tampered or rollback.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum LogError {
    /// An entry or row that does not parse.
    #[error("membership log: malformed entry: {0}")]
    Malformed(String),
    /// An entry of another vault.
    #[error("membership log: seq {0} is an entry of another vault")]
    WrongVault(u64),
    /// A seq or previous hash that does not continue the chain.
    #[error("membership log: broken chain: {0}")]
    BrokenChain(String),
    /// The log does not start with a valid create entry (or has a second).
    #[error("membership log: the log does not start with a valid create entry: {0}")]
    BadCreate(String),
    /// No verified key record for the signer.
    #[error("membership log: no verified key for user {user} at seq {seq}")]
    UnknownSigner {
        /// The entry.
        seq: u64,
        /// The signer.
        user: Uuid,
    },
    /// The signer's key records have other fingerprints than the logged one.
    #[error("membership log: the key record of user {user} does not match the logged fingerprint (seq {seq})")]
    KeyMismatch {
        /// The entry.
        seq: u64,
        /// The signer.
        user: Uuid,
    },
    /// A signature that does not verify.
    #[error("membership log: bad signature at seq {0}")]
    BadSignature(u64),
    /// The signer or subject is not a member at that point.
    #[error("membership log: not a member at that point: {0}")]
    NotMember(String),
    /// An add of someone who is a member already.
    #[error("membership log: {0} is a member already")]
    AlreadyMember(Uuid),
    /// A rotate or leave whose subject is not its signer.
    #[error("membership log: the subject must be the signer (seq {0})")]
    BadSubject(u64),
    /// The signer has no authority for the entry.
    #[error("membership log: no authority: {0}")]
    NoAuthority(String),
    /// The vault would have no owner.
    #[error("membership log: the vault would have no owner: {0}")]
    LastOwner(String),
    /// A wrong key generation.
    #[error("membership log: wrong key generation: {0}")]
    Generation(String),
    /// The log forks from the one this device saw.
    #[error("membership log: forks from the one this device saw at seq {0}")]
    Fork(u64),
    /// The log is shorter than the one this device saw.
    #[error("membership log: {entries} entries, this device has seen {seen}")]
    Rollback {
        /// Entries served.
        entries: u64,
        /// The remembered head's seq.
        seen: u64,
    },
    /// The log is valid, but the member who added this account is not
    /// pinned: the vault is an invitation, not to be opened or written to.
    #[error("the vault is an invitation from a member whose key is not verified")]
    Invitation(Invitation),
    /// The log is valid but does not list this account (with its own key)
    /// as a member.
    #[error("this account is not a member of the vault")]
    NotAMember,
    /// A key record given for the replay cannot be fingerprinted.
    #[error("membership log: key record: {0}")]
    Key(TrustError),
}

impl LogError {
    /// The log is not a valid signed chain, or forks from what this device
    /// saw: the server sent something the members did not write.
    pub fn is_tampered(&self) -> bool {
        !matches!(
            self,
            LogError::Rollback { .. } | LogError::Invitation(_) | LogError::NotAMember
        )
    }

    /// The log is older than the one this device saw.
    pub fn is_rollback(&self) -> bool {
        matches!(self, LogError::Rollback { .. })
    }
}

/// One membership log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The vault.
    pub vault_id: Uuid,
    /// 1, 2, …
    pub seq: u64,
    /// Hash of entry seq-1; zero at seq 1.
    pub prev: [u8; HASH_SIZE],
    /// What the entry does.
    pub op: Op,
    /// The member concerned; for create and rotate the signer.
    pub subject: Uuid,
    /// Create, add, change_role: the role; empty otherwise.
    pub role: String,
    /// Create, add: the subject's fingerprint; zero otherwise.
    pub subject_fp: Fingerprint,
    /// The key generation in force after this entry.
    pub generation: u64,
    /// Create, remove, rotate: the new generation's key commitment. Leave:
    /// the hash of the newest vault manifest the member who leaves verified
    /// (or zero), the one manifest signed by them that others may still
    /// accept after they left (docs/crypto.md §9, §10). Zero otherwise.
    pub commitment: [u8; HASH_SIZE],
    /// Who signed.
    pub signer: Uuid,
    /// When, as claimed by the signer (unix milliseconds).
    pub unix_milli: u64,
}

impl Entry {
    /// The shape Parse accepts and Marshal writes; the replay rules come on
    /// top.
    fn check(&self) -> Result<(), LogError> {
        let bad = |m: String| Err(LogError::Malformed(m));
        let op = self.op;
        if self.seq == 0 {
            return bad("seq 0".into());
        }
        if self.seq == 1 && self.prev != [0; HASH_SIZE] {
            return bad("seq 1 with a previous hash".into());
        }
        if op.has_role() && !ROLES.contains(&self.role.as_str()) {
            return bad(format!("{op:?} with role {:?}", self.role));
        }
        if !op.has_role() && !self.role.is_empty() {
            return bad(format!("{op:?} with a role"));
        }
        if op.has_fingerprint() == self.subject_fp.is_zero() {
            return bad(format!(
                "{op:?} with a fingerprint where none belongs, or none where one does"
            ));
        }
        if op.new_generation() && self.commitment == [0; HASH_SIZE] {
            return bad(format!("{op:?} without a key commitment"));
        }
        if !op.new_generation() && op != Op::Leave && self.commitment != [0; HASH_SIZE] {
            return bad(format!("{op:?} with a key commitment where none belongs"));
        }
        if self.generation == 0 {
            return bad("generation 0".into());
        }
        Ok(())
    }

    /// The entry message (docs/crypto.md §9); refused for an entry of the
    /// wrong shape.
    pub fn marshal(&self) -> Result<Vec<u8>, LogError> {
        self.check()?;
        let mut b = Vec::with_capacity(FIXED_SIZE + self.role.len());
        b.extend_from_slice(LABEL);
        b.push(0);
        b.extend_from_slice(self.vault_id.as_bytes());
        b.extend_from_slice(&self.seq.to_be_bytes());
        b.extend_from_slice(&self.prev);
        b.push(self.op as u8);
        b.extend_from_slice(self.subject.as_bytes());
        b.push(self.role.len() as u8);
        b.extend_from_slice(self.role.as_bytes());
        b.extend_from_slice(&self.subject_fp.0);
        b.extend_from_slice(&self.generation.to_be_bytes());
        b.extend_from_slice(&self.commitment);
        b.extend_from_slice(self.signer.as_bytes());
        b.extend_from_slice(&self.unix_milli.to_be_bytes());
        Ok(b)
    }
}

/// Parses an entry message strictly: the label, exactly the length its role
/// implies, and the shape of docs/crypto.md §9. For every accepted message
/// `m`, `parse(m)?.marshal()` is `m`.
pub fn parse(m: &[u8]) -> Result<Entry, LogError> {
    if m.len() < FIXED_SIZE || &m[..LABEL.len()] != LABEL || m[LABEL.len()] != 0 {
        return Err(LogError::Malformed("not an entry".into()));
    }
    let mut r = &m[LABEL.len() + 1..];
    let mut take = |n: usize| {
        let (a, b) = r.split_at(n);
        r = b;
        a
    };
    let vault_id = Uuid::from_slice(take(16)).expect("16 bytes");
    let seq = u64::from_be_bytes(take(8).try_into().expect("8 bytes"));
    let prev: [u8; 32] = take(HASH_SIZE).try_into().expect("32 bytes");
    let op_byte = take(1)[0];
    let subject = Uuid::from_slice(take(16)).expect("16 bytes");
    let n = take(1)[0] as usize;
    if m.len() != FIXED_SIZE + n {
        return Err(LogError::Malformed(format!("{} bytes for a role of {n}", m.len())));
    }
    let role = take(n);
    let subject_fp = Fingerprint(take(32).try_into().expect("32 bytes"));
    let generation = u64::from_be_bytes(take(8).try_into().expect("8 bytes"));
    let commitment: [u8; 32] = take(HASH_SIZE).try_into().expect("32 bytes");
    let signer = Uuid::from_slice(take(16)).expect("16 bytes");
    let unix_milli = u64::from_be_bytes(take(8).try_into().expect("8 bytes"));
    // Go checks seq and the previous hash before the op.
    if seq == 0 {
        return Err(LogError::Malformed("seq 0".into()));
    }
    if seq == 1 && prev != [0; HASH_SIZE] {
        return Err(LogError::Malformed("seq 1 with a previous hash".into()));
    }
    let op = Op::from_byte(op_byte).ok_or_else(|| LogError::Malformed(format!("unknown op {op_byte}")))?;
    let role = String::from_utf8(role.to_vec()).map_err(|_| LogError::Malformed("role is not UTF-8".into()))?;
    let e = Entry {
        vault_id,
        seq,
        prev,
        op,
        subject,
        role,
        subject_fp,
        generation,
        commitment,
        signer,
        unix_milli,
    };
    e.check()?;
    Ok(e)
}

/// An entry with its message and Ed25519 signature, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    /// The parsed entry.
    pub entry: Entry,
    /// Its message, `entry.marshal()`.
    pub message: Vec<u8>,
    /// The signature.
    pub signature: [u8; 64],
}

impl Signed {
    /// Signs `e` with the signer's key.
    pub fn sign(e: Entry, key: &SigningKey) -> Result<Signed, LogError> {
        let message = e.marshal()?;
        let signature = key.sign(&message).to_bytes();
        Ok(Signed {
            entry: e,
            message,
            signature,
        })
    }

    /// `SHA-256(message || signature)`, what the next entry names as its
    /// previous hash. It covers the signature, so one entry has one hash.
    pub fn hash(&self) -> [u8; HASH_SIZE] {
        let mut h = Sha256::new();
        h.update(&self.message);
        h.update(self.signature);
        h.finalize().into()
    }

    /// The stored text form: base64(message), base64(signature).
    pub fn row(&self) -> (String, String) {
        (crate::b64::encode(&self.message), crate::b64::encode(&self.signature))
    }
}

/// Parses a stored row: both columns canonical standard base64, the message
/// an entry ([`parse`]), the signature 64 bytes. The signature is checked by
/// the replay, which knows the signer's key.
pub fn parse_row(entry: &str, signature: &str) -> Result<Signed, LogError> {
    let message = crate::b64::decode(entry).ok_or_else(|| LogError::Malformed("entry: not canonical base64".into()))?;
    let signature: [u8; 64] = crate::b64::decode(signature)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| LogError::Malformed("signature is not canonical base64 of 64 bytes".into()))?;
    let entry = parse(&message)?;
    Ok(Signed {
        entry,
        message,
        signature,
    })
}

/// One member of a vault, as the replayed log has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The member.
    pub user_id: Uuid,
    /// Their role.
    pub role: String,
    /// The fingerprint logged when they were added.
    pub fingerprint: Fingerprint,
    /// The verified key with that fingerprint, if one was given.
    pub ed25519_public: Option<[u8; 32]>,
    /// The signer of the create or add entry.
    pub added_by: Uuid,
    /// That entry's seq.
    pub added_seq: u64,
    /// When, as claimed by that signer (unix milliseconds).
    pub added_at: u64,
}

/// A log identified by its last entry. The client remembers the head it
/// last accepted per vault.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Head {
    /// The last entry's seq (0: no log).
    pub seq: u64,
    /// Its hash.
    pub hash: [u8; HASH_SIZE],
}

/// One stretch of a user's membership: from entry `seq` on, `role` (empty:
/// not a member) with fingerprint `fp`.
#[derive(Clone, Debug)]
struct Span {
    seq: u64,
    role: String,
    fp: Fingerprint,
}

/// A replayed log, built only by applying entries in order ([`replay`],
/// [`State::apply`]), each checked against every rule of docs/crypto.md §9.
#[derive(Clone, Debug)]
pub struct State {
    vault_id: Uuid,
    keys: HashMap<(Uuid, Fingerprint), [u8; 32]>,
    keyed: HashSet<Uuid>,
    members: HashMap<Uuid, Member>,
    history: HashMap<Uuid, Vec<Span>>,
    hashes: Vec<[u8; HASH_SIZE]>,
    gens: Vec<u64>,
    commitments: Vec<[u8; HASH_SIZE]>,
    last_cut: u64,
    left_since: bool,
}

/// Who made this account a member: the signer of the create or add entry
/// that last did so, with the fingerprint the log records for them, and
/// when (as they claim).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Invitation {
    /// The inviting member.
    pub by: Uuid,
    /// Their logged fingerprint.
    pub fingerprint: Fingerprint,
    /// The add (or create) entry.
    pub seq: u64,
    /// Its claimed time (unix milliseconds).
    pub at: u64,
    /// This account created the vault.
    pub creator: bool,
}

/// Whether a member of `role` may add, change or remove a member of role
/// `target` (or give that role): an owner anyone, an admin only editors and
/// viewers.
fn manages(role: &str, target: &str) -> bool {
    match role {
        "owner" => true,
        "admin" => target == "editor" || target == "viewer",
        _ => false,
    }
}

impl State {
    /// The state of an empty log of `vault_id`, with the verified key
    /// records of its signers and members.
    pub fn new(vault_id: Uuid, keys: &[Identity]) -> Result<State, LogError> {
        let mut s = State {
            vault_id,
            keys: HashMap::new(),
            keyed: HashSet::new(),
            members: HashMap::new(),
            history: HashMap::new(),
            hashes: Vec::new(),
            gens: Vec::new(),
            commitments: Vec::new(),
            last_cut: 0,
            left_since: false,
        };
        s.add_keys(keys)?;
        Ok(s)
    }

    /// Adds verified key records (identities whose key records' own
    /// signatures the caller checked). The replay uses the one whose
    /// fingerprint the log recorded for a member; a record with another
    /// fingerprint is never used for that member.
    pub fn add_keys(&mut self, keys: &[Identity]) -> Result<(), LogError> {
        for k in keys {
            let fp = k.fingerprint().map_err(LogError::Key)?;
            self.keys.insert((k.user_id, fp), k.ed25519_public);
            self.keyed.insert(k.user_id);
        }
        Ok(())
    }

    fn seq(&self) -> u64 {
        self.hashes.len() as u64
    }

    /// The vault the log belongs to.
    pub fn vault_id(&self) -> Uuid {
        self.vault_id
    }

    /// The key generation in force at the head (0 for an empty log).
    pub fn generation(&self) -> u64 {
        self.commitments.len() as u64
    }

    fn key(&self, user: Uuid, fp: &Fingerprint, seq: u64) -> Result<[u8; 32], LogError> {
        if let Some(k) = self.keys.get(&(user, *fp)) {
            return Ok(*k);
        }
        if self.keyed.contains(&user) {
            return Err(LogError::KeyMismatch { seq, user });
        }
        Err(LogError::UnknownSigner { seq, user })
    }

    fn owners(&self) -> usize {
        self.members.values().filter(|m| m.role == "owner").count()
    }

    /// The next entry for `op` with the chain fields filled in: this vault,
    /// the next seq, the head's hash, and the generation (the current one,
    /// or the next for remove and rotate). The caller signs it and may check
    /// it with [`State::apply`] on a clone before sending.
    #[allow(clippy::too_many_arguments)]
    pub fn next(
        &self,
        op: Op,
        subject: Uuid,
        role: &str,
        fp: Fingerprint,
        commitment: [u8; HASH_SIZE],
        signer: Uuid,
        unix_milli: u64,
    ) -> Entry {
        let generation = match op {
            Op::Remove | Op::Rotate => self.generation() + 1,
            _ => self.generation().max(1),
        };
        Entry {
            vault_id: self.vault_id,
            seq: self.seq() + 1,
            prev: self.hashes.last().copied().unwrap_or_default(),
            op,
            subject,
            role: role.to_owned(),
            subject_fp: fp,
            generation,
            commitment,
            signer,
            unix_milli,
        }
    }

    /// Checks `r` against every rule of docs/crypto.md §9 at this point of
    /// the log and, if it passes, appends it. On error the state is
    /// unchanged.
    pub fn apply(&mut self, r: &Signed) -> Result<(), LogError> {
        let e = &r.entry;
        let seq = self.seq() + 1;
        // The message must be the entry (a row built by hand could differ).
        if e.marshal()? != r.message {
            return Err(LogError::Malformed("message and entry differ".into()));
        }
        // Chain: this vault, the next seq, the previous entry's hash.
        if e.vault_id != self.vault_id {
            return Err(LogError::WrongVault(e.seq));
        }
        if e.seq != seq {
            return Err(LogError::BrokenChain(format!("seq {} where {seq} comes next", e.seq)));
        }
        let prev = if seq > 1 {
            self.hashes[seq as usize - 2]
        } else {
            [0; HASH_SIZE]
        };
        if e.prev != prev {
            return Err(LogError::BrokenChain(format!(
                "seq {seq} does not name the hash of entry {}",
                seq - 1
            )));
        }
        // Creation: seq 1 and only seq 1, self-signed by an owner at
        // generation 1.
        if (seq == 1) != (e.op == Op::Create) {
            return Err(LogError::BadCreate(format!("seq {seq} is {:?}", e.op)));
        }
        let (signer_key, signer_role) = if e.op == Op::Create {
            if e.subject != e.signer || e.role != "owner" || e.generation != 1 {
                return Err(LogError::BadCreate(
                    "subject, signer, role owner and generation 1 must agree".into(),
                ));
            }
            // Self-signed: the key is the one whose fingerprint the entry
            // names. Who the creator is must be vouched for by the trust
            // anchor ([`State::anchor`]).
            (self.key(e.signer, &e.subject_fp, seq)?, "owner".to_owned())
        } else {
            let m = self
                .members
                .get(&e.signer)
                .ok_or_else(|| LogError::NotMember(format!("signer {} at seq {seq}", e.signer)))?;
            (self.key(e.signer, &m.fingerprint, seq)?, m.role.clone())
        };
        if crate::keyrecord::verify_raw(&signer_key, &r.message, &r.signature).is_err() {
            return Err(LogError::BadSignature(seq));
        }
        self.rules(e, &signer_role, seq)?;

        // All checks passed: apply.
        self.hashes.push(r.hash());
        match e.op {
            Op::Create | Op::Add => {
                self.members.insert(
                    e.subject,
                    Member {
                        user_id: e.subject,
                        role: e.role.clone(),
                        fingerprint: e.subject_fp,
                        ed25519_public: self.keys.get(&(e.subject, e.subject_fp)).copied(),
                        added_by: e.signer,
                        added_seq: seq,
                        added_at: e.unix_milli,
                    },
                );
                self.history.entry(e.subject).or_default().push(Span {
                    seq,
                    role: e.role.clone(),
                    fp: e.subject_fp,
                });
            }
            Op::ChangeRole => {
                let m = self.members.get_mut(&e.subject).expect("rules checked membership");
                m.role = e.role.clone();
                let fp = m.fingerprint;
                self.history.entry(e.subject).or_default().push(Span {
                    seq,
                    role: e.role.clone(),
                    fp,
                });
            }
            Op::Remove | Op::Leave => {
                self.members.remove(&e.subject);
                self.history.entry(e.subject).or_default().push(Span {
                    seq,
                    role: String::new(),
                    fp: Fingerprint::default(),
                });
            }
            Op::Rotate => {}
        }
        if e.op.new_generation() {
            self.commitments.push(e.commitment);
            self.left_since = false;
        }
        if e.op == Op::Leave {
            self.left_since = true;
        }
        if matches!(e.op, Op::Remove | Op::Leave | Op::ChangeRole | Op::Rotate) {
            self.last_cut = seq;
        }
        self.gens.push(e.generation);
        Ok(())
    }

    /// Membership, authority, the last owner and the generation of `e`,
    /// signed by a member of `signer_role`.
    fn rules(&self, e: &Entry, signer_role: &str, seq: u64) -> Result<(), LogError> {
        let subject = self.members.get(&e.subject);
        let gen_now = self.generation();
        let mut want = gen_now;
        match e.op {
            Op::Create => want = 1,
            Op::Add => {
                if subject.is_some() {
                    return Err(LogError::AlreadyMember(e.subject));
                }
                if !manages(signer_role, &e.role) {
                    return Err(LogError::NoAuthority(format!(
                        "seq {seq}: {signer_role} may not add a member as {}",
                        e.role
                    )));
                }
            }
            Op::ChangeRole => {
                let s = subject.ok_or_else(|| LogError::NotMember(format!("{} at seq {seq}", e.subject)))?;
                if !manages(signer_role, &s.role) || !manages(signer_role, &e.role) {
                    return Err(LogError::NoAuthority(format!(
                        "seq {seq}: {signer_role} may not change {} to {}",
                        s.role, e.role
                    )));
                }
                if s.role == "owner" && e.role != "owner" && self.owners() == 1 {
                    return Err(LogError::LastOwner(format!("seq {seq}: demoting the last owner")));
                }
            }
            Op::Remove => {
                let s = subject.ok_or_else(|| LogError::NotMember(format!("{} at seq {seq}", e.subject)))?;
                if !manages(signer_role, &s.role) {
                    return Err(LogError::NoAuthority(format!(
                        "seq {seq}: {signer_role} may not remove a {}",
                        s.role
                    )));
                }
                if s.role == "owner" && self.owners() == 1 {
                    return Err(LogError::LastOwner(format!("seq {seq}: removing the last owner")));
                }
                want = gen_now + 1;
            }
            Op::Rotate => {
                if e.subject != e.signer {
                    return Err(LogError::BadSubject(seq));
                }
                if signer_role != "owner" && signer_role != "admin" {
                    return Err(LogError::NoAuthority(format!(
                        "seq {seq}: a {signer_role} may not rotate"
                    )));
                }
                want = gen_now + 1;
            }
            Op::Leave => {
                if e.subject != e.signer {
                    return Err(LogError::BadSubject(seq));
                }
                if subject.is_some_and(|s| s.role == "owner") && self.owners() == 1 {
                    return Err(LogError::LastOwner(format!("seq {seq}: the last owner leaving")));
                }
            }
        }
        if e.generation != want {
            return Err(LogError::Generation(format!(
                "seq {seq}: {} where {want} is due",
                e.generation
            )));
        }
        Ok(())
    }

    /// The seq and hash of the last entry.
    pub fn head(&self) -> Head {
        match self.hashes.last() {
            None => Head::default(),
            Some(h) => Head {
                seq: self.seq(),
                hash: *h,
            },
        }
    }

    /// Checks the log against the head this device remembers (the zero head
    /// if none): shorter is [`LogError::Rollback`]; another hash at the
    /// remembered seq is [`LogError::Fork`]. Only a log that extends the
    /// remembered head passes.
    pub fn check_head(&self, remembered: &Head) -> Result<(), LogError> {
        if remembered.seq == 0 {
            return Ok(());
        }
        if self.seq() < remembered.seq {
            return Err(LogError::Rollback {
                entries: self.seq(),
                seen: remembered.seq,
            });
        }
        if self.hashes[remembered.seq as usize - 1] != remembered.hash {
            return Err(LogError::Fork(remembered.seq));
        }
        Ok(())
    }

    /// The current members, in the order they were added.
    pub fn members(&self) -> Vec<Member> {
        let mut out: Vec<Member> = self.members.values().cloned().collect();
        out.sort_by_key(|m| m.added_seq);
        out
    }

    /// The current membership of `user`.
    pub fn member(&self, user: Uuid) -> Option<&Member> {
        self.members.get(&user)
    }

    /// `user`'s role and logged fingerprint just after entry `seq`; `None`
    /// if they were not a member then (or `seq` is not in the log).
    pub fn role_at(&self, user: Uuid, seq: u64) -> Option<(String, Fingerprint)> {
        if seq == 0 || seq > self.seq() {
            return None;
        }
        let h = self.history.get(&user)?;
        let i = h.partition_point(|sp| sp.seq <= seq).checked_sub(1)?;
        let sp = &h[i];
        (!sp.role.is_empty()).then(|| (sp.role.clone(), sp.fp))
    }

    /// The verified Ed25519 key of `user` as a member just after entry
    /// `seq` (the key whose fingerprint the log recorded), and their role.
    pub fn key_at(&self, user: Uuid, seq: u64) -> Result<([u8; 32], String), LogError> {
        let (role, fp) = self
            .role_at(user, seq)
            .ok_or_else(|| LogError::NotMember(format!("{user} at seq {seq}")))?;
        Ok((self.key(user, &fp, seq)?, role))
    }

    /// The hash of entry `seq`.
    pub fn hash_at(&self, seq: u64) -> Option<[u8; HASH_SIZE]> {
        (seq >= 1 && seq <= self.seq()).then(|| self.hashes[seq as usize - 1])
    }

    /// The key generation in force just after entry `seq`.
    pub fn generation_at(&self, seq: u64) -> Option<u64> {
        (seq >= 1 && seq <= self.seq()).then(|| self.gens[seq as usize - 1])
    }

    /// The logged key commitment of generation `g`.
    pub fn commitment(&self, g: u64) -> Option<[u8; HASH_SIZE]> {
        (g >= 1 && g <= self.generation()).then(|| self.commitments[g as usize - 1])
    }

    /// Every generation's commitment, for [`grant::Chain`].
    pub fn commitments(&self) -> std::collections::BTreeMap<u64, [u8; HASH_SIZE]> {
        self.commitments
            .iter()
            .enumerate()
            .map(|(i, c)| (i as u64 + 1, *c))
            .collect()
    }

    /// Checks `key` against the logged commitment of generation `g`
    /// ([`GrantError::KeyCommitment`] otherwise). A client uses a vault key
    /// only after this check, so a server cannot make it use a key of its
    /// own choosing.
    pub fn check_vault_key(&self, g: u64, key: &[u8; 32]) -> Result<(), GrantError> {
        let c = self.commitment(g).ok_or(GrantError::KeyCommitment(g))?;
        grant::check_key_commitment(key, self.vault_id, g, &c)
    }

    /// The seq of the newest remove, leave, change_role or rotate entry (0
    /// if none): a manifest must name a log seq at or after it.
    pub fn last_cut(&self) -> u64 {
        self.last_cut
    }

    /// Whether a member left since the last new generation: the next owner
    /// or admin to open the vault appends a rotate entry.
    pub fn rotation_due(&self) -> bool {
        self.left_since
    }

    /// Decides whether this account may open the vault (the trust anchor
    /// of docs/crypto.md §9). `self_id` must be a current member with the
    /// fingerprint `self_fp` (its own key; else [`LogError::NotAMember`]);
    /// then the vault opens if it created the vault, or if `pinned` vouches
    /// for the signer of the add entry that last made it a member, with the
    /// key the log recorded for that signer. Else the vault is an
    /// invitation ([`LogError::Invitation`], saying from whom).
    pub fn anchor(
        &self,
        self_id: Uuid,
        self_fp: &Fingerprint,
        pinned: &dyn Fn(Uuid, &Fingerprint) -> bool,
    ) -> Result<Invitation, LogError> {
        let m = self
            .members
            .get(&self_id)
            .filter(|m| m.fingerprint.ct_equal(self_fp))
            .ok_or(LogError::NotAMember)?;
        let mut inv = Invitation {
            by: m.added_by,
            fingerprint: Fingerprint::default(),
            seq: m.added_seq,
            at: m.added_at,
            creator: false,
        };
        if m.added_seq == 1 {
            inv.creator = true;
            inv.fingerprint = *self_fp;
            return Ok(inv);
        }
        // The fingerprint the log held for the signer when they signed.
        let Some((_, fp)) = self.role_at(m.added_by, m.added_seq - 1) else {
            return Err(LogError::Invitation(inv)); // cannot happen: apply checked it
        };
        inv.fingerprint = fp;
        if !pinned(m.added_by, &fp) {
            return Err(LogError::Invitation(inv));
        }
        Ok(inv)
    }
}

/// Applies `rows` in order to an empty log of `vault_id` and returns the
/// state, or the first rule an entry breaks. An empty log is
/// [`LogError::BadCreate`]: every shared vault starts with its creator's
/// entry.
pub fn replay(vault_id: Uuid, rows: &[Signed], keys: &[Identity]) -> Result<State, LogError> {
    let mut s = State::new(vault_id, keys)?;
    if rows.is_empty() {
        return Err(LogError::BadCreate("empty log".into()));
    }
    for r in rows {
        s.apply(r)?;
    }
    Ok(s)
}

/// How a client opens a shared vault's log: a log shorter than the
/// remembered head is refused ([`LogError::Rollback`]) before the replay;
/// the replay checks every rule; the log must extend the remembered head
/// ([`LogError::Fork`]); then the trust anchor for this account
/// ([`LogError::NotAMember`], [`LogError::Invitation`]).
#[allow(clippy::too_many_arguments)]
pub fn open(
    vault_id: Uuid,
    rows: &[Signed],
    keys: &[Identity],
    remembered: &Head,
    self_id: Uuid,
    self_fp: &Fingerprint,
    pinned: &dyn Fn(Uuid, &Fingerprint) -> bool,
) -> Result<(State, Invitation), LogError> {
    if (rows.len() as u64) < remembered.seq {
        return Err(LogError::Rollback {
            entries: rows.len() as u64,
            seen: remembered.seq,
        });
    }
    let s = replay(vault_id, rows, keys)?;
    s.check_head(remembered)?;
    let inv = s.anchor(self_id, self_fp, pinned)?;
    Ok((s, inv))
}
