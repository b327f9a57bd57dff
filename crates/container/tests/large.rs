//! A container larger than 4 GiB: 64-bit offsets and lengths end to end.
//!
//! Ignored by default (it checksums and scans 4 GiB: about 75 s in a debug build); run with
//! `cargo test -p pwlc-container --release --test large -- --ignored`.
//! The file is written sparse, so it takes almost no disk space.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};

use pwlc_codecs::DType;
use pwlc_container::{EntryMeta, FileInfo, Reader, Writer};

/// Writes zero runs as holes (by seeking) and everything else as data.
struct SparseFile(File);

impl Write for SparseFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(1 << 20);
        if buf[..n].iter().all(|&b| b == 0) {
            self.0.seek(SeekFrom::Current(n as i64))?;
            Ok(n)
        } else {
            self.0.write(&buf[..n])
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[test]
#[ignore = "writes a sparse 4 GiB file and checksums it; run with --ignored"]
fn container_over_4_gib_reads_its_last_tensor() {
    const BIG: usize = (4 << 30) + 4096;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.pwlc");
    // Untouched anonymous pages read as zeros without taking memory.
    let zeros = memmap2::MmapMut::map_anon(BIG).unwrap();
    let info = FileInfo {
        format: "npy".into(),
        file_name: "big.npy".into(),
        original_size: BIG as u64,
        layout: vec![],
        settings: "{}".into(),
    };
    let mut w = Writer::new(SparseFile(File::create(&path).unwrap()), &info).unwrap();
    let meta = |name, shape| EntryMeta {
        name,
        dtype: DType::U8,
        shape,
        codec: 0,
        max_abs_error: 0.0,
        rmse: 0.0,
    };
    w.add(&meta("zeros", &[BIG as u64]), &zeros).unwrap();
    w.add(&meta("last", &[5]), b"tail!").unwrap();
    let (_, size) = w.finish_into_inner().unwrap();
    assert!(size > 1 << 32);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), size);

    let r = Reader::open(&path).unwrap();
    let last = r.find("last").unwrap();
    assert!(r.entries()[last].offset > 1 << 32);
    assert_eq!(r.payload(last).unwrap(), b"tail!");
    assert_eq!(r.entries()[0].length, BIG as u64);
}
