//! The zip container of PyTorch >= 1.6 checkpoints: reading members in place, writing them
//! back stored (uncompressed) with their data 64-byte aligned, as `torch.save` does.

use std::io::{Cursor, Write};

use bytes::Bytes;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use super::Fault;

/// The alignment `torch.save` gives each member's data, so storages can be memory-mapped.
const ALIGNMENT: u16 = 64;

/// One member of the archive.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub name: String,
    /// The stored bytes, borrowed from the file.
    pub data: Bytes,
}

/// Lists the members of the zip archive `file` in their order, checking each one's CRC-32.
/// Only stored (uncompressed) members are supported; `torch.save` writes no other kind.
pub(crate) fn read_members(file: &Bytes) -> Result<Vec<Member>, Fault> {
    let bad = |e: zip::result::ZipError| Fault::File(format!("not a readable zip archive: {e}"));
    let mut archive = ZipArchive::new(Cursor::new(file.as_ref())).map_err(bad)?;
    let mut members = Vec::with_capacity(archive.len());
    for index in 0..archive.len() {
        let entry = archive.by_index_raw(index).map_err(bad)?;
        let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
        let fault = |message: &str| Fault::File(format!("zip member '{name}': {message}"));
        if entry.compression() != CompressionMethod::Stored {
            return Err(fault("compressed members are not supported"));
        }
        let start = entry
            .data_start()
            .and_then(|s| usize::try_from(s).ok())
            .ok_or_else(|| fault("data offset unknown"))?;
        let end = usize::try_from(entry.compressed_size())
            .ok()
            .and_then(|n| start.checked_add(n))
            .filter(|&end| end <= file.len())
            .ok_or_else(|| fault("data runs past the end of the file"))?;
        let data = file.slice(start..end);
        // `torch.save` with `compute_crc32=False` records 0 instead of a checksum.
        let crc = entry.crc32();
        if crc != 0 && crc32fast::hash(&data) != crc {
            return Err(fault("CRC-32 mismatch, the file is corrupt"));
        }
        members.push(Member { name, data });
    }
    Ok(members)
}

/// Writes `members` (name, data) as a zip archive to `out`, in order, stored and 64-byte
/// aligned. The archive is streamed (sizes and CRC-32 in data descriptors, as `torch.save`
/// writes them too), so `out` need not be seekable.
pub(crate) fn write_members<'a>(
    out: &mut dyn Write,
    members: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> std::io::Result<()> {
    let mut zip = ZipWriter::new_stream(out);
    for (name, data) in members {
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Stored)
            .with_alignment(ALIGNMENT)
            .large_file(data.len() as u64 >= u64::from(u32::MAX));
        zip.start_file(name, options)?;
        zip.write_all(data)?;
    }
    zip.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_members_read_back_aligned() {
        let mut out = Vec::new();
        let members = [
            ("a/data.pkl", &b"\x80\x02."[..]),
            ("a/data/0", &[1u8; 100][..]),
        ];
        write_members(&mut out, members).expect("writes");
        let file = Bytes::from(out);
        let read = read_members(&file).expect("reads");
        assert_eq!(read.len(), 2);
        for (member, (name, data)) in read.iter().zip(members) {
            assert_eq!(member.name, name);
            assert_eq!(&member.data[..], data);
            let offset = member.data.as_ptr() as usize - file.as_ptr() as usize;
            assert_eq!(offset % usize::from(ALIGNMENT), 0, "{name} at {offset}");
        }
    }

    #[test]
    fn corrupt_data_fails_its_checksum() {
        let mut out = Vec::new();
        write_members(&mut out, [("a/data/0", &[7u8; 64][..])]).expect("writes");
        let at = out.iter().position(|&b| b == 7).expect("data is there");
        out[at] = 8;
        let err = read_members(&Bytes::from(out)).unwrap_err();
        assert!(matches!(err, Fault::File(m) if m.contains("CRC-32")));
    }
}
