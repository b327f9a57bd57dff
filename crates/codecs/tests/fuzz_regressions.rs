//! Hostile decode requests: a declared shape far larger than anything the payload holds must
//! be an error, not an abort on a failed allocation and not a huge allocation. A counting
//! allocator records the largest allocation each test thread obtains while decoding.
//!
//! Also holds the inputs the fuzz targets in `fuzz/` found, as plain regression tests.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use pwlc_codecs::{decode, encode, pwl, quant, Bound, CodecId, DType, Method, TensorRef};

/// Forwards to the system allocator and records the largest allocation of the current thread
/// that succeeded. Refused requests (a `try_reserve` of terabytes) are not recorded: they are
/// the clean way to fail, and they cost nothing.
struct PeakAlloc;

thread_local! {
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

/// Records `size` if the allocation at `ptr` succeeded.
fn note(ptr: *mut u8, size: usize) -> *mut u8 {
    if !ptr.is_null() {
        // `try_with` never allocates and fails only during thread teardown.
        let _ = PEAK.try_with(|p| p.set(p.get().max(size)));
    }
    ptr
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged and returns
// its result; the bookkeeping only touches a const-initialised thread-local `Cell`, which does
// not allocate.
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(System.alloc(layout), layout.size())
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(System.alloc_zeroed(layout), layout.size())
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(System.realloc(ptr, layout, new_size), new_size)
    }
}

#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;

/// Largest single allocation allowed while rejecting a hostile request.
const FEW_MB: usize = 4 << 20;

/// A 4 x 16 f32 tensor: a smooth ramp, so every codec has something to model.
fn sample() -> Vec<u8> {
    (0..64)
        .flat_map(|i| ((i as f32) * 0.01 - 0.3).to_le_bytes())
        .collect()
}

/// Payloads of the sample tensor, one per codec, with the shape they were made for.
fn payloads() -> Vec<(CodecId, Vec<u8>)> {
    let bound = Bound::Abs(0.001);
    let methods = [
        Method::Raw,
        Method::Lossless,
        Method::Quant {
            bound,
            options: quant::Options::default(),
        },
        Method::Pwl {
            bound,
            options: Default::default(),
        },
        // Without grid intercepts (`pm = 0`) a pwl payload stores no per-group steps.
        Method::Pwl {
            bound,
            options: pwl::Options {
                pm: 0.0,
                ..Default::default()
            },
        },
    ];
    let data = sample();
    let shape = [4u64, 16];
    methods
        .iter()
        .map(|m| {
            let t = TensorRef {
                dtype: DType::F32,
                shape: &shape,
                data: &data,
            };
            let e = encode(t, m).expect("the sample encodes");
            (e.codec, e.payload)
        })
        .collect()
}

/// Decodes and returns whether it failed, and the largest allocation made meanwhile.
fn decode_peak(codec: CodecId, dtype: DType, shape: &[u64], payload: &[u8]) -> (bool, usize) {
    PEAK.with(|p| p.set(0));
    let failed = decode(codec, dtype, shape, payload).is_err();
    (failed, PEAK.with(Cell::get))
}

#[test]
fn peak_tracker_sees_large_allocations() {
    PEAK.with(|p| p.set(0));
    let big = std::hint::black_box(vec![1u8; FEW_MB]);
    assert!(PEAK.with(Cell::get) >= FEW_MB, "{}", big.len());
}

#[test]
fn the_sample_payloads_decode_with_their_own_shape() {
    for (codec, payload) in payloads() {
        let (failed, _) = decode_peak(codec, DType::F32, &[4, 16], &payload);
        assert!(!failed, "{codec:?}");
    }
}

/// Shapes whose f32 bytes fit in `usize` but could never be allocated, next to shapes whose
/// bytes overflow.
const HUGE_SHAPES: [&[u64]; 5] = [
    &[1 << 40],
    &[1 << 20, 1 << 20],
    &[1, 1 << 40],
    &[1 << 36, 16],
    &[1 << 62],
];

#[test]
fn huge_shapes_with_tiny_payloads_fail_without_large_allocations() {
    for (codec, payload) in payloads() {
        for shape in HUGE_SHAPES {
            for dtype in [DType::F32, DType::F16, DType::F64] {
                let (failed, peak) = decode_peak(codec, dtype, shape, &payload);
                assert!(failed, "{codec:?} {dtype} {shape:?}: decoded");
                assert!(
                    peak < FEW_MB,
                    "{codec:?} {dtype} {shape:?}: allocated {peak} bytes before failing"
                );
            }
        }
    }
}

#[test]
fn huge_shapes_with_empty_and_short_payloads_fail_without_large_allocations() {
    for codec in [
        CodecId::Raw,
        CodecId::Lossless,
        CodecId::Quant,
        CodecId::Pwl,
    ] {
        for payload in [&[][..], &[1], &[1, 0, 0, 0, 0, 0, 0, 0, 0]] {
            let (failed, peak) = decode_peak(codec, DType::F32, &[1 << 40], payload);
            assert!(failed, "{codec:?} {payload:?}: decoded");
            assert!(
                peak < FEW_MB,
                "{codec:?} {payload:?}: allocated {peak} bytes"
            );
        }
    }
}
