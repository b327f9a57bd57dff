//! A second encoder of the container, written from `docs/FORMAT.md` alone, whose every field
//! can be set to any value (including invalid ones), plus shared test helpers.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use pwlc_codecs::DType;
use pwlc_container::{ContainerError, EntryMeta, FileInfo, Reader, Writer};

/// Every field of one index entry, as stored.
#[derive(Debug, Clone)]
pub struct SpecEntry {
    pub name: Vec<u8>,
    pub dtype: u8,
    pub rank: u8,
    pub codec: u16,
    pub shape: Vec<u64>,
    pub original_bytes: u64,
    pub max_abs_error: f64,
    pub rmse: f64,
    pub offset: u64,
    pub length: u64,
    pub crc: u32,
}

/// Every field of a container, as stored; [`Spec::bytes`] lays them out.
#[derive(Debug, Clone)]
pub struct Spec {
    pub version: u16,
    pub format: Vec<u8>,
    pub file_name: Vec<u8>,
    pub original_size: u64,
    pub settings: Vec<u8>,
    pub layout_size: u64,
    pub layout_crc: u32,
    pub layout_zstd: Vec<u8>,
    pub entry_count: u32,
    pub entries: Vec<SpecEntry>,
    pub payload_area: Vec<u8>,
}

impl Spec {
    /// A valid container of f32 vectors holding `payloads` (lengths must be multiples of 4).
    pub fn valid(layout: &[u8], payloads: &[&[u8]]) -> Spec {
        let mut area = Vec::new();
        let mut entries = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            entries.push(SpecEntry {
                name: format!("t{i}").into_bytes(),
                dtype: 0,
                rank: 1,
                codec: 0,
                shape: vec![p.len() as u64 / 4],
                original_bytes: p.len() as u64,
                max_abs_error: 0.0,
                rmse: 0.0,
                offset: 16 + area.len() as u64,
                length: p.len() as u64,
                crc: crc32c::crc32c(p),
            });
            area.extend_from_slice(p);
            area.resize(area.len().next_multiple_of(8), 0);
        }
        Spec {
            version: 1,
            format: b"npy".to_vec(),
            file_name: b"model.npy".to_vec(),
            original_size: 1234,
            settings: b"{}".to_vec(),
            layout_size: layout.len() as u64,
            layout_crc: crc32c::crc32c(layout),
            layout_zstd: zstd::bulk::compress(layout, 9).expect("zstd compresses"),
            entry_count: entries.len() as u32,
            entries,
            payload_area: area,
        }
    }

    /// The index bytes.
    pub fn index(&self) -> Vec<u8> {
        let mut x = Vec::new();
        put_str(&mut x, &self.format);
        put_str(&mut x, &self.file_name);
        x.extend_from_slice(&self.original_size.to_le_bytes());
        put_str(&mut x, &self.settings);
        x.extend_from_slice(&self.layout_size.to_le_bytes());
        x.extend_from_slice(&self.layout_crc.to_le_bytes());
        x.extend_from_slice(&(self.layout_zstd.len() as u64).to_le_bytes());
        x.extend_from_slice(&self.layout_zstd);
        x.extend_from_slice(&self.entry_count.to_le_bytes());
        for e in &self.entries {
            put_str(&mut x, &e.name);
            x.push(e.dtype);
            x.push(e.rank);
            x.extend_from_slice(&e.codec.to_le_bytes());
            for d in &e.shape {
                x.extend_from_slice(&d.to_le_bytes());
            }
            for v in [
                e.original_bytes,
                e.max_abs_error.to_bits(),
                e.rmse.to_bits(),
                e.offset,
                e.length,
            ] {
                x.extend_from_slice(&v.to_le_bytes());
            }
            x.extend_from_slice(&e.crc.to_le_bytes());
        }
        x
    }

    /// The whole file: header, payload area, index, footer (with a correct index CRC).
    pub fn bytes(&self) -> Vec<u8> {
        let index = self.index();
        let mut f = b"PWLC\r\n\x1a\n".to_vec();
        f.extend_from_slice(&self.version.to_le_bytes());
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&self.payload_area);
        let index_offset = f.len() as u64;
        f.extend_from_slice(&index);
        f.extend_from_slice(&index_offset.to_le_bytes());
        f.extend_from_slice(&(index.len() as u64).to_le_bytes());
        f.extend_from_slice(&crc32c::crc32c(&index).to_le_bytes());
        f.extend_from_slice(&[0; 4]);
        f.extend_from_slice(b"PWLCEND\x89");
        f
    }
}

fn put_str(x: &mut Vec<u8>, s: &[u8]) {
    x.extend_from_slice(&(s.len() as u32).to_le_bytes());
    x.extend_from_slice(s);
}

/// A small file info with a non-empty layout.
pub fn sample_info() -> FileInfo {
    FileInfo {
        format: "npy".into(),
        file_name: "model.npy".into(),
        original_size: 1234,
        layout: b"layout: header and padding of the original file".to_vec(),
        settings: "{}".into(),
    }
}

/// Writes `tensors` (name, f32 values) with codec 0 into a container in memory.
pub fn write_f32(info: &FileInfo, tensors: &[(&str, &[f32])]) -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), info).expect("header is written");
    for (name, values) in tensors {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let meta = EntryMeta {
            name,
            dtype: DType::F32,
            shape: &[values.len() as u64],
            codec: 0,
            max_abs_error: 0.0,
            rmse: 0.0,
        };
        w.add(&meta, &bytes).expect("entry is valid");
    }
    w.finish_into_inner().expect("index is written").0
}

/// Opens `bytes` and reads every payload; the first error, if any.
pub fn open_and_read_all(bytes: Vec<u8>) -> Result<Reader, ContainerError> {
    let r = Reader::from_bytes(bytes)?;
    for i in 0..r.entries().len() {
        r.payload(i)?;
    }
    Ok(r)
}
