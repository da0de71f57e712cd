//! Our vendor operation Backup (see `kmip_codec::vendor`): the server writes a backup of its
//! store into `DATA_DIR/backups/` and names the file. The server does it because redb lets
//! one process open the store: while the server runs, its read transaction is the only way to
//! a consistent snapshot. The file stays on the server's disk, never on the wire: a store of a
//! million keys would not fit a KMIP message, and the `backup` command beside the data
//! directory moves it where the operator asked.

use super::Ctx;
use crate::error::OpError;
use kmip_codec::vendor::tag as vendor;
use kmip_codec::{Ttlv, Value};

pub(crate) fn apply(ctx: &mut Ctx<'_>, payload: &Ttlv) -> Result<Ttlv, OpError> {
    let data_dir = ctx.settings.data_dir.as_ref().ok_or_else(|| {
        OpError::OperationNotSupported(
            "this server has no data directory to write a backup to".into(),
        )
    })?;
    let dir = crate::backup::backup_dir(data_dir);
    create_private_dir(&dir)
        .map_err(|e| OpError::GeneralFailure(format!("backup directory {}: {e}", dir.display())))?;
    let carried = crate::backup::carried_files(data_dir)
        .map_err(|e| OpError::GeneralFailure(e.to_string()))?;
    let files: Vec<(&str, &[u8])> = carried.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    let mut nonce = [0u8; 6];
    openssl::rand::rand_bytes(&mut nonce)
        .map_err(|_| OpError::GeneralFailure("no random bytes for a file name".into()))?;
    let name = format!(
        "backup-{}-{}.kmipbak",
        ctx.now,
        nonce.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let manifest = ctx.txn.backup(&files, &dir.join(&name))?;
    tracing::info!(file = %dir.join(&name).display(), objects = manifest.objects, "backup written");
    Ok(Ttlv::structure(
        payload.tag,
        vec![
            Ttlv::new(vendor::BACKUP_FILE, Value::TextString(name)),
            Ttlv::new(
                vendor::BACKUP_MANIFEST,
                Value::TextString(manifest.to_text()),
            ),
        ],
    ))
}

/// A directory only the server's user reads: backups hold every object's metadata.
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}
