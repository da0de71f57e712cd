//! Our vendor vocabulary, defined once for the server, its store records, `kmip-ca` and the
//! tests: operations in the 0x8xxxxxxx range of the Operation enumeration, and tags in the
//! 0x54xxxx extension range. Unknown to other clients, which KMIP lets us define.

/// Vendor operations; their payloads are told in kmip-server's `ops` table.
pub mod operation {
    /// Grant { Unique Identifier, Grantee, Operation* }: replaces the grantee's rights; with
    /// no Operation it withdraws them.
    pub const GRANT: u32 = 0x8000_0001;
    /// List Grants { Unique Identifier } -> { Unique Identifier, Grant { Grantee, Operation* }* }
    pub const LIST_GRANTS: u32 = 0x8000_0002;
    /// CRL { Unique Identifier of a CA certificate } -> { Unique Identifier, Data (DER) }
    pub const CRL: u32 = 0x8000_0003;
    /// Certificate Request { Unique Identifier of a public key, Attributes (x-ca-subject) } ->
    /// { Unique Identifier, Data: PKCS#10 DER signed by its private key }
    pub const CERTIFICATE_REQUEST: u32 = 0x8000_0004;
    /// Import CA { Unique Identifier of a public key, Certificate Value } -> { Unique
    /// Identifier of the new Certificate }: a CA certificate an external root issued.
    pub const IMPORT_CA: u32 = 0x8000_0005;
    /// Trust Wrapping Key { Unique Identifier, Trusted (Boolean) } -> { Unique Identifier }:
    /// an administrator marks (or unmarks) a key that Sensitive keys may leave wrapped by
    /// under `--wrap-trusted-only`.
    pub const TRUST_WRAPPING_KEY: u32 = 0x8000_0006;
    /// Backup {} -> { Backup File (its name in DATA_DIR/backups), Backup Manifest }: an
    /// administrator has the server write a backup of its store (`kmip-server backup`).
    pub const BACKUP: u32 = 0x8000_0007;
    /// List Approvals {} -> { Approval Request { Approval ID, Requester, Operation, Unique
    /// Identifier, Object Group, Approvals Needed, Approver*, Requested At, Expires At,
    /// Approval State }* }: an administrator sees the open requests of dual control.
    pub const LIST_APPROVALS: u32 = 0x8000_0008;
    /// Approve { Approval ID } -> { Approval Request }: an administrator (not the requester)
    /// approves; a second approval by the same administrator counts once.
    pub const APPROVE: u32 = 0x8000_0009;
    /// Deny { Approval ID } -> { Approval Request }: an administrator refuses a request.
    pub const DENY: u32 = 0x8000_000A;
}

/// Vendor tags: the fields of our operations, and of the store's records.
pub mod tag {
    use crate::Tag;
    /// A stored record (the store's own encoding, never sent).
    pub const RECORD: Tag = Tag(0x54_FF00);
    /// A record's sealed material.
    pub const SEALED: Tag = Tag(0x54_FF01);
    /// The identity that owns an object (also its index key).
    pub const OWNER: Tag = Tag(0x54_FF02);
    /// A grant: an identity and the operations it may perform.
    pub const GRANT: Tag = Tag(0x54_FF03);
    /// The identity a grant is for (also an index key).
    pub const GRANTEE: Tag = Tag(0x54_FF04);
    /// Present when the server generated an object's material.
    pub const GENERATED: Tag = Tag(0x54_FF05);
    /// Trust Wrapping Key's Boolean.
    pub const TRUSTED: Tag = Tag(0x54_FF06);
    /// Backup's file name, in the server's backup directory.
    pub const BACKUP_FILE: Tag = Tag(0x54_FF07);
    /// Backup's manifest (`key=value` lines).
    pub const BACKUP_MANIFEST: Tag = Tag(0x54_FF08);
    /// One approval request of dual control (a structure).
    pub const APPROVAL_REQUEST: Tag = Tag(0x54_FF09);
    /// An approval request's identifier, as text (its Asynchronous Correlation Value too).
    pub const APPROVAL_ID: Tag = Tag(0x54_FF0A);
    /// The identity that asked for the operation.
    pub const REQUESTER: Tag = Tag(0x54_FF0B);
    /// An administrator who approved.
    pub const APPROVER: Tag = Tag(0x54_FF0C);
    /// How many approvals the request needs (an Integer).
    pub const APPROVALS_NEEDED: Tag = Tag(0x54_FF0D);
    /// pending, approved, denied, canceled, expired or executed.
    pub const APPROVAL_STATE: Tag = Tag(0x54_FF0E);
    /// When the request was made (a Date-Time).
    pub const REQUESTED_AT: Tag = Tag(0x54_FF0F);
    /// When the request expires if nothing happens (a Date-Time).
    pub const EXPIRES_AT: Tag = Tag(0x54_FF10);
}
