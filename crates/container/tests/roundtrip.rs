//! Round trips through writer and reader, determinism, and the writer's file handling.

mod common;

use common::{sample_info, write_f32, Spec};
use proptest::prelude::*;
use pwlc_codecs::DType;
use pwlc_container::{ContainerError, EntryMeta, FileInfo, Reader, Writer};

/// One tensor as the tests generate it.
#[derive(Debug, Clone)]
struct Item {
    name: String,
    dtype: DType,
    shape: Vec<u64>,
    codec: u16,
    max_abs_error: f64,
    rmse: f64,
    payload: Vec<u8>,
}

fn item(name: String) -> impl Strategy<Value = Item> {
    (
        prop::sample::select(DType::ALL.to_vec()),
        prop::collection::vec(0u64..6, 0..5),
        any::<u16>(),
        (0.0f64..1e3, 0.0f64..1e3),
        prop::collection::vec(any::<u8>(), 0..70),
    )
        .prop_map(
            move |(dtype, shape, codec, (max_abs_error, rmse), payload)| Item {
                name: name.clone(),
                dtype,
                shape,
                codec,
                max_abs_error,
                rmse,
                payload,
            },
        )
}

/// Up to 8 tensors with distinct names (including unicode and empty ones), in random order.
fn items() -> impl Strategy<Value = Vec<Item>> {
    prop::collection::btree_set("\\PC{0,12}", 0..8)
        .prop_flat_map(|names| names.into_iter().map(item).collect::<Vec<_>>())
        .prop_shuffle()
}

fn file_info() -> impl Strategy<Value = FileInfo> {
    (
        "\\PC{0,10}",
        "\\PC{0,20}",
        any::<u64>(),
        prop::collection::vec(any::<u8>(), 0..300),
        "\\PC{0,30}",
    )
        .prop_map(
            |(format, file_name, original_size, layout, settings)| FileInfo {
                format,
                file_name,
                original_size,
                layout,
                settings,
            },
        )
}

fn meta(it: &Item) -> EntryMeta<'_> {
    EntryMeta {
        name: &it.name,
        dtype: it.dtype,
        shape: &it.shape,
        codec: it.codec,
        max_abs_error: it.max_abs_error,
        rmse: it.rmse,
    }
}

fn write(info: &FileInfo, items: &[Item]) -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), info).unwrap();
    for it in items {
        w.add(&meta(it), &it.payload).unwrap();
    }
    let (bytes, size) = w.finish_into_inner().unwrap();
    assert_eq!(size, bytes.len() as u64);
    bytes
}

fn check_read(r: &Reader, info: &FileInfo, items: &[Item]) {
    assert_eq!(r.info(), info);
    assert_eq!(r.entries().len(), items.len());
    for (i, (e, it)) in r.entries().iter().zip(items).enumerate() {
        assert_eq!(e.name, it.name);
        assert_eq!(e.dtype, it.dtype);
        assert_eq!(e.shape, it.shape);
        assert_eq!(e.codec, it.codec);
        let elements: u64 = it.shape.iter().product();
        assert_eq!(e.original_bytes, elements * it.dtype.size() as u64);
        assert_eq!(e.max_abs_error.to_bits(), it.max_abs_error.to_bits());
        assert_eq!(e.rmse.to_bits(), it.rmse.to_bits());
        assert_eq!(e.length, it.payload.len() as u64);
        assert_eq!(e.offset % 8, 0);
        assert_eq!(r.payload(i).unwrap(), &it.payload[..]);
        assert_eq!(r.find(&it.name), Some(i));
    }
}

proptest! {
    #[test]
    fn round_trip_is_exact_and_deterministic(info in file_info(), items in items()) {
        let bytes = write(&info, &items);
        prop_assert_eq!(&bytes, &write(&info, &items));
        let r = Reader::from_bytes(bytes).unwrap();
        check_read(&r, &info, &items);
        prop_assert_eq!(r.find("\u{0}absent"), None);
    }
}

#[test]
fn file_round_trip_matches_memory() {
    let info = sample_info();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.pwlc");
    let items: Vec<Item> = [&b"abcde"[..], b"", b"0123456789abcdef"]
        .iter()
        .enumerate()
        .map(|(i, p)| Item {
            name: format!("t{i}"),
            dtype: DType::U8,
            shape: vec![p.len() as u64],
            codec: 1,
            max_abs_error: 0.0,
            rmse: 0.0,
            payload: p.to_vec(),
        })
        .collect();
    let mut w = Writer::create(&path, &info).unwrap();
    for it in &items {
        w.add(&meta(it), &it.payload).unwrap();
    }
    let size = w.finish().unwrap();
    let on_disk = std::fs::read(&path).unwrap();
    assert_eq!(size, on_disk.len() as u64);
    assert_eq!(on_disk, write(&info, &items));
    check_read(&Reader::open(&path).unwrap(), &info, &items);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file left"
    );
}

/// The writer's bytes are exactly what `docs/FORMAT.md` describes (the spec encoder in
/// `common` is written from the document alone).
#[test]
fn writer_matches_the_specification() {
    let info = sample_info();
    let a: Vec<f32> = vec![1.0, 2.0, 3.0];
    let b: Vec<f32> = vec![];
    let c: Vec<f32> = vec![-1.5; 4];
    let written = write_f32(&info, &[("t0", &a), ("t1", &b), ("t2", &c)]);
    let le = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let (pa, pb, pc) = (le(&a), le(&b), le(&c));
    let spec = Spec::valid(&info.layout, &[&pa, &pb, &pc]);
    assert_eq!(written, spec.bytes());
}

#[test]
fn crc32c_is_the_castagnoli_crc_of_the_specification() {
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
}

#[test]
fn finish_replaces_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.pwlc");
    std::fs::write(&path, b"old content").unwrap();
    let w = Writer::create(&path, &sample_info()).unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"old content",
        "untouched until finish"
    );
    w.finish().unwrap();
    assert!(Reader::open(&path).is_ok());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn dropping_an_unfinished_writer_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.pwlc");
    let mut w = Writer::create(&path, &sample_info()).unwrap();
    let m = EntryMeta {
        name: "x",
        dtype: DType::U8,
        shape: &[3],
        codec: 0,
        max_abs_error: 0.0,
        rmse: 0.0,
    };
    w.add(&m, b"abc").unwrap();
    drop(w);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn writer_rejects_duplicate_names_and_oversized_entries() {
    let mut w = Writer::new(Vec::new(), &sample_info()).unwrap();
    let mut m = EntryMeta {
        name: "x",
        dtype: DType::F32,
        shape: &[2],
        codec: 0,
        max_abs_error: 0.0,
        rmse: 0.0,
    };
    w.add(&m, b"12345678").unwrap();
    let dup = w.add(&m, b"").unwrap_err();
    assert!(
        matches!(dup, ContainerError::InvalidEntry { ref name, .. } if name == "x"),
        "{dup}"
    );
    m.name = "big";
    m.shape = &[u64::MAX, 2];
    assert!(matches!(
        w.add(&m, b""),
        Err(ContainerError::InvalidEntry { .. })
    ));
    m.name = "deep";
    m.shape = &[1; 33];
    assert!(matches!(
        w.add(&m, b""),
        Err(ContainerError::InvalidEntry { .. })
    ));
}

#[test]
fn unknown_codec_opens_and_is_reported_as_none() {
    let mut w = Writer::new(Vec::new(), &sample_info()).unwrap();
    let m = EntryMeta {
        name: "future",
        dtype: DType::U8,
        shape: &[1],
        codec: 999,
        max_abs_error: 0.0,
        rmse: 0.0,
    };
    w.add(&m, b"z").unwrap();
    let r = Reader::from_bytes(w.finish_into_inner().unwrap().0).unwrap();
    assert_eq!(r.entries()[0].codec, 999);
    assert_eq!(r.entries()[0].codec_id(), None);
    assert_eq!(r.payload(0).unwrap(), b"z");
}

#[test]
fn payload_past_the_last_entry_is_an_error() {
    let r = Reader::from_bytes(write_f32(&sample_info(), &[("a", &[1.0])])).unwrap();
    let err = r.payload(1).unwrap_err();
    assert!(
        matches!(err, ContainerError::NoEntry { index: 1, count: 1 }),
        "{err}"
    );
}

/// Accepts `room` bytes, then fails every write.
struct FullDisk {
    room: usize,
}

impl std::io::Write for FullDisk {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.room == 0 {
            return Err(std::io::Error::other("disk full"));
        }
        let n = buf.len().min(self.room);
        self.room -= n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_failed_write_breaks_the_writer() {
    let mut w = Writer::new(FullDisk { room: 20 }, &sample_info()).unwrap();
    let m = EntryMeta {
        name: "x",
        dtype: DType::U8,
        shape: &[10],
        codec: 0,
        max_abs_error: 0.0,
        rmse: 0.0,
    };
    let err = w.add(&m, b"0123456789").unwrap_err().to_string();
    assert!(err.contains("disk full"), "{err}");
    let m = EntryMeta {
        name: "y",
        shape: &[0],
        ..m
    };
    let err = w.add(&m, b"").unwrap_err().to_string();
    assert!(err.contains("earlier write failed"), "{err}");
    assert!(w.finish_into_inner().is_err());
}
