//! Hostile containers: every count, size and offset out of range is rejected with an error,
//! before anything large is allocated. A counting allocator records the largest single
//! allocation each test thread makes while opening.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::{open_and_read_all, Spec, SpecEntry};
use pwlc_container::{ContainerError, Reader};

/// Forwards to the system allocator and records the largest request of the current thread.
struct PeakAlloc;

thread_local! {
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with` never allocates and fails only during thread teardown.
    let _ = PEAK.try_with(|p| p.set(p.get().max(size)));
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the
// bookkeeping only touches a const-initialised thread-local `Cell`, which does not allocate.
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;

/// Largest single allocation allowed while rejecting a hostile file of a few hundred bytes.
const SMALL: usize = 64 << 10;

/// Opens `bytes` (and reads every payload); returns the error and the largest allocation.
fn reject(bytes: Vec<u8>) -> (ContainerError, usize) {
    PEAK.with(|p| p.set(0));
    let result = open_and_read_all(bytes);
    let peak = PEAK.with(Cell::get);
    match result {
        Ok(_) => panic!("hostile container was accepted"),
        Err(e) => (e, peak),
    }
}

/// Asserts that `spec` is rejected with a message containing `needle`, allocating little.
fn assert_rejected(spec: &Spec, needle: &str) {
    let (err, peak) = reject(spec.bytes());
    let msg = err.to_string();
    assert!(msg.contains(needle), "expected '{needle}' in: {msg}");
    assert!(
        peak < SMALL,
        "allocated {peak} bytes before rejecting: {msg}"
    );
}

fn base() -> Spec {
    Spec::valid(
        b"layout",
        &[&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], &[0; 4]],
    )
}

fn first(spec: &mut Spec) -> &mut SpecEntry {
    &mut spec.entries[0]
}

#[test]
fn base_is_valid() {
    assert!(open_and_read_all(base().bytes()).is_ok());
}

#[test]
fn peak_tracker_sees_large_allocations() {
    PEAK.with(|p| p.set(0));
    let big = std::hint::black_box(vec![1u8; SMALL]);
    assert!(PEAK.with(Cell::get) >= SMALL, "{}", big.len());
}

#[test]
fn huge_entry_count() {
    let mut s = base();
    s.entry_count = u32::MAX;
    assert_rejected(&s, "declares 4294967295 entries");
}

#[test]
fn entry_count_too_small_leaves_bytes() {
    let mut s = base();
    s.entry_count = 1;
    assert_rejected(&s, "unexpected bytes after the last index entry");
}

#[test]
fn huge_string_lengths() {
    let mut s = base();
    s.format = vec![b'x'; 3];
    let mut bytes = s.bytes();
    // Rewrite the format length (first index field) to u32::MAX and fix the index CRC.
    let index_offset = 16 + s.payload_area.len();
    bytes[index_offset..index_offset + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let footer = bytes.len() - 32;
    let crc = crc32c::crc32c(&bytes[index_offset..footer]);
    bytes[footer + 16..footer + 20].copy_from_slice(&crc.to_le_bytes());
    PEAK.with(|p| p.set(0));
    let err = Reader::from_bytes(bytes).unwrap_err().to_string();
    assert!(err.contains("index ends inside format name"), "{err}");
    assert!(PEAK.with(Cell::get) < SMALL);
}

#[test]
fn invalid_utf8_name() {
    let mut s = base();
    first(&mut s).name = vec![0xff, 0xfe];
    assert_rejected(&s, "not valid UTF-8");
}

#[test]
fn rank_above_limit() {
    let mut s = base();
    let e = first(&mut s);
    e.rank = 200;
    e.shape = vec![1; 200];
    assert_rejected(&s, "rank 200 exceeds 32");
}

#[test]
fn rank_disagreeing_with_the_shape_bytes() {
    let mut s = base();
    first(&mut s).rank = 30; // declares 29 more dimensions than are present
    assert!(reject(s.bytes()).0.to_string().contains("corrupt"));
}

#[test]
fn shape_product_overflows() {
    let mut s = base();
    let e = first(&mut s);
    e.rank = 3;
    e.shape = vec![u64::MAX / 2, 3, 0];
    assert_rejected(&s, "overflows");
    let e = first(&mut s);
    e.shape = vec![1 << 62, 2, 1];
    assert_rejected(&s, "overflows"); // elements fit in u64, bytes (f32) do not
}

#[test]
fn shape_disagrees_with_original_bytes() {
    let mut s = base();
    first(&mut s).shape = vec![4];
    assert_rejected(&s, "is 16 bytes, but the entry says 12");
}

#[test]
fn unknown_dtype() {
    let mut s = base();
    first(&mut s).dtype = 14;
    assert_rejected(&s, "unknown dtype code 14");
}

#[test]
fn payload_offsets_and_lengths_out_of_range() {
    for (offset, length) in [
        (u64::MAX - 3, 12),
        (16, u64::MAX),
        (1 << 40, 12),
        (16, 1 << 40),
    ] {
        let mut s = base();
        let e = first(&mut s);
        e.offset = offset;
        e.length = length;
        assert_rejected(&s, "extends past the payload area");
    }
}

#[test]
fn overlapping_and_misplaced_payloads() {
    let mut s = base();
    s.entries[1].offset = s.entries[0].offset;
    assert_rejected(&s, "overlaps or is not adjacent");
    let mut s = base();
    first(&mut s).offset = 0; // inside the header
    assert_rejected(&s, "overlaps or is not adjacent");
    let mut s = base();
    s.entries.pop();
    s.entry_count = 1;
    assert_rejected(
        &s,
        "the payloads end at byte 32, but the index starts at byte 40",
    );
}

#[test]
fn duplicate_names() {
    let mut s = base();
    s.entries[1].name = s.entries[0].name.clone();
    assert_rejected(&s, "appears more than once");
}

#[test]
fn absurd_layout_size() {
    let mut s = base();
    s.layout_size = 1 << 40;
    assert_rejected(&s, "more than the limit");
}

#[test]
fn layout_bomb_stops_at_the_declared_size() {
    let mut s = base();
    s.layout_zstd = zstd::bulk::compress(&vec![0u8; 64 << 20], 3).unwrap();
    s.layout_size = 100;
    assert_rejected(&s, "decompresses to more than 100 bytes");
}

#[test]
fn layout_shorter_than_declared() {
    let mut s = base();
    s.layout_size += 1;
    assert_rejected(&s, "not the declared");
}

#[test]
fn layout_crc_mismatch() {
    let mut s = base();
    s.layout_crc ^= 1;
    assert_rejected(&s, "layout checksum mismatch");
}

#[test]
fn layout_frame_with_a_huge_window() {
    use std::io::Write;
    let mut s = base();
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    enc.window_log(27).unwrap();
    enc.include_contentsize(false).unwrap();
    enc.write_all(b"layout").unwrap();
    s.layout_zstd = enc.finish().unwrap();
    assert_rejected(&s, "does not decompress");
}

#[test]
fn trailing_bytes_after_the_layout_frame() {
    let mut s = base();
    s.layout_zstd.push(0);
    assert_rejected(&s, "unexpected bytes after the layout");
}

#[test]
fn newer_and_zero_versions() {
    let mut s = base();
    s.version = 2;
    let (err, _) = reject(s.bytes());
    assert!(matches!(err, ContainerError::NewerVersion(2, 1)), "{err}");
    s.version = 0;
    assert_rejected(&s, "version 0");
}

#[test]
fn footer_index_range_outside_the_file() {
    for (offset, length) in [(u64::MAX, 8), (16, u64::MAX), (8, 100), (u64::MAX - 7, 9)] {
        let mut bytes = base().bytes();
        let footer = bytes.len() - 32;
        bytes[footer..footer + 8].copy_from_slice(&u64::to_le_bytes(offset));
        bytes[footer + 8..footer + 16].copy_from_slice(&u64::to_le_bytes(length));
        let (err, peak) = reject(bytes);
        assert!(
            err.to_string()
                .contains("does not end where the footer starts"),
            "{err}"
        );
        assert!(peak < SMALL);
    }
}

#[test]
fn index_crc_mismatch() {
    let mut bytes = base().bytes();
    let footer = bytes.len() - 32;
    bytes[footer + 16] ^= 0x80;
    let (err, _) = reject(bytes);
    assert!(err.to_string().contains("index checksum mismatch"), "{err}");
}
