//! Hostile containers at the pipeline level: a `.pwlc` whose index declares a huge tensor
//! (shape `[1 << 40]`, consistent with its recorded byte size) over a tiny payload must fail
//! to decode without allocating more than a few MB. A counting allocator records the largest
//! allocation obtained by any thread (decoding runs on the rayon pool).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use pwlc::codecs::{encode, pwl, quant, Bound, DType, Method, TensorRef};
use pwlc::container::{EntryMeta, FileInfo, Writer};
use pwlc::{DecompressOptions, Format};
use tempfile::TempDir;

/// Forwards to the system allocator and records the largest allocation that succeeded, on any
/// thread. Refused requests (a `try_reserve` of terabytes) are the clean way to fail and are
/// not recorded.
struct PeakAlloc;

static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Records `size` if the allocation at `ptr` succeeded.
fn note(ptr: *mut u8, size: usize) -> *mut u8 {
    if !ptr.is_null() {
        PEAK.fetch_max(size, Ordering::Relaxed);
    }
    ptr
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged and returns
// its result; the bookkeeping is one atomic operation, which does not allocate.
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

/// The peak is global, so the tests run one at a time.
static MEASURING: Mutex<()> = Mutex::new(());

/// Largest single allocation allowed while rejecting a hostile container.
const FEW_MB: usize = 4 << 20;

/// The declared shape of the hostile tensor: 4 TiB of f32.
const HUGE: [u64; 1] = [1 << 40];

/// Runs `f` and returns its result with the largest allocation made meanwhile.
fn measure<T>(f: impl FnOnce() -> T) -> (T, usize) {
    PEAK.store(0, Ordering::Relaxed);
    let result = f();
    (result, PEAK.load(Ordering::Relaxed))
}

/// The methods whose payloads are put under the huge shape.
fn methods() -> Vec<Method> {
    let bound = Bound::Abs(0.001);
    vec![
        Method::Raw,
        Method::Lossless,
        Method::Quant {
            bound,
            options: quant::Options::default(),
        },
        Method::Pwl {
            bound,
            options: pwl::Options::default(),
        },
        Method::Pwl {
            bound,
            options: pwl::Options {
                pm: 0.0,
                ..Default::default()
            },
        },
    ]
}

/// Writes a container with one entry: `method`'s payload of a 64-element f32 ramp, declared
/// with `shape`.
fn write_container(path: &Path, method: &Method, shape: &[u64]) {
    let data: Vec<u8> = (0..64)
        .flat_map(|i| (i as f32 * 0.01).to_le_bytes())
        .collect();
    let tensor = TensorRef {
        dtype: DType::F32,
        shape: &[64],
        data: &data,
    };
    let encoded = encode(tensor, method).expect("the ramp encodes");
    let info = FileInfo {
        format: Format::Safetensors.name().into(),
        file_name: "model.safetensors".into(),
        original_size: 0,
        layout: Vec::new(),
        settings: "{}".into(),
    };
    let mut writer = Writer::create(path, &info).expect("create the container");
    let meta = EntryMeta {
        name: "w",
        dtype: DType::F32,
        shape,
        codec: encoded.codec as u16,
        max_abs_error: 0.0,
        rmse: 0.0,
    };
    writer.add(&meta, &encoded.payload).expect("add the entry");
    writer.finish().expect("finish the container");
}

#[test]
fn the_peak_tracker_sees_allocations_on_other_threads() {
    let _guard = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let (len, peak) = measure(|| {
        std::thread::spawn(|| std::hint::black_box(vec![1u8; FEW_MB]).len())
            .join()
            .expect("the thread runs")
    });
    assert!(peak >= FEW_MB, "saw {peak} bytes of {len}");
}

#[test]
fn the_containers_decode_with_an_honest_shape() {
    let _guard = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new().expect("temporary folder");
    for (i, method) in methods().iter().enumerate() {
        let path = dir.path().join(format!("{i}.pwlc"));
        write_container(&path, method, &[64]);
        let tensors = pwlc::decode_tensors(&path, &|_, _| {});
        assert!(tensors.is_ok(), "{method:?}: {tensors:?}");
    }
}

#[test]
fn a_huge_declared_tensor_over_a_tiny_payload_fails_without_large_allocations() {
    let _guard = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new().expect("temporary folder");
    for (i, method) in methods().iter().enumerate() {
        let path = dir.path().join(format!("{i}.pwlc"));
        write_container(&path, method, &HUGE);
        let (verified, peak) = measure(|| pwlc::verify(&path, &|_, _| {}));
        let err = verified.expect_err("a 4 TiB tensor from a tiny payload was accepted");
        assert!(
            peak < FEW_MB,
            "{method:?}: allocated {peak} bytes before: {err}"
        );
        assert!(err.to_string().contains("tensor 'w'"), "{err}");

        let output = dir.path().join(format!("{i}.safetensors"));
        let options = DecompressOptions::default();
        let (decompressed, peak) =
            measure(|| pwlc::decompress(&path, &output, &options, &|_, _| {}));
        assert!(decompressed.is_err(), "{method:?}: decompressed");
        assert!(
            peak < FEW_MB,
            "{method:?}: decompress allocated {peak} bytes"
        );
        assert!(!output.exists(), "{method:?}: left an output behind");
    }
}
