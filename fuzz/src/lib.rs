//! Shared harness code of the pwlc fuzz targets.
//!
//! Each target in `fuzz_targets/` is a thin `fuzz_target!` over one function here, so the
//! harnesses read as plain Rust and the oracles (what counts as a failure besides a panic) sit
//! in one place.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use pwlc_codecs::{Bound, CodecId, DType, Method, TensorRef};
use pwlc_models::{Format, Tensor};

/// Largest tensor (in elements) the codec targets build or decode, so a case stays fast and far
/// below libFuzzer's `-rss_limit_mb=2048`. Huge declared shapes are the subject of the
/// counting-allocator tests in `crates/codecs/tests/fuzz_regressions.rs` instead.
pub const MAX_ELEMENTS: u64 = 1 << 20;

/// Reads fixed-size fields from the front of a fuzz input; every read past the end yields
/// `None`, so a short input just ends the case.
pub struct Input<'a> {
    bytes: &'a [u8],
}

impl<'a> Input<'a> {
    /// A reader over the whole input.
    pub fn new(bytes: &'a [u8]) -> Self {
        Input { bytes }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.bytes.len() {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    /// The next byte.
    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    /// The next little-endian `u32`.
    pub fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Everything not read yet.
    pub fn rest(self) -> &'a [u8] {
        self.bytes
    }
}

/// Opens `data` as a container and reads (checksum-verifies) every payload; then does the same
/// with the index checksum repaired, so mutations of the index reach its parser instead of
/// stopping at the checksum. Errors are the expected outcome for most inputs; only panics,
/// aborts and hangs are findings.
pub fn container(data: &[u8]) {
    open_and_read(data.to_vec());
    if let Some(repaired) = with_index_checksum(data) {
        open_and_read(repaired);
    }
}

fn open_and_read(bytes: Vec<u8>) {
    let Ok(reader) = pwlc_container::Reader::from_bytes(bytes) else {
        return;
    };
    for i in 0..reader.entries().len() {
        let _ = reader.payload(i);
    }
    // The entry past the last one must be an error, not a panic.
    assert!(reader.payload(reader.entries().len()).is_err());
}

/// Size of the container footer: index offset (u64), index length (u64), index CRC-32C (u32),
/// reserved (u32), end marker (8 bytes); see `docs/FORMAT.md`.
const FOOTER_LEN: usize = 32;

/// `data` with the footer's index CRC-32C set to the checksum of the index range the footer
/// names, or `None` if the file is too short or the range is not inside it.
fn with_index_checksum(data: &[u8]) -> Option<Vec<u8>> {
    let footer = data.len().checked_sub(FOOTER_LEN)?;
    let field = |at: usize| {
        let bytes: [u8; 8] = data[footer + at..footer + at + 8].try_into().ok()?;
        usize::try_from(u64::from_le_bytes(bytes)).ok()
    };
    let (offset, len) = (field(0)?, field(8)?);
    let index = data.get(offset..offset.checked_add(len)?)?;
    let mut repaired = data.to_vec();
    repaired[footer + 16..footer + 20].copy_from_slice(&crc32c::crc32c(index).to_le_bytes());
    Some(repaired)
}

/// A decode request taken from the front of a fuzz input: codec, dtype and shape.
#[derive(Debug)]
pub struct DecodeCase<'a> {
    pub codec: CodecId,
    pub dtype: DType,
    pub shape: Vec<u64>,
    pub payload: &'a [u8],
}

impl<'a> DecodeCase<'a> {
    /// Layout: codec id byte (mod 4), dtype code byte (mod 14), rank byte (mod 4), `rank`
    /// little-endian `u32` dimensions, then the payload. `None` if the input is too short or
    /// the shape has more than [`MAX_ELEMENTS`] elements.
    pub fn parse(data: &'a [u8]) -> Option<DecodeCase<'a>> {
        let mut input = Input::new(data);
        let codec = CodecId::from_u16(u16::from(input.u8()? % 4))?;
        let dtype = DType::ALL[usize::from(input.u8()?) % DType::ALL.len()];
        let rank = input.u8()? % 4;
        let shape = (0..rank)
            .map(|_| input.u32().map(u64::from))
            .collect::<Option<Vec<u64>>>()?;
        let elements = shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d))?;
        (elements <= MAX_ELEMENTS).then_some(DecodeCase {
            codec,
            dtype,
            shape,
            payload: input.rest(),
        })
    }
}

/// Decodes an arbitrary payload; a success must have exactly the shape's byte size.
pub fn codecs(data: &[u8]) {
    let Some(case) = DecodeCase::parse(data) else {
        return;
    };
    if let Ok(bytes) = pwlc_codecs::decode(case.codec, case.dtype, &case.shape, case.payload) {
        let elements: u64 = case.shape.iter().product();
        assert_eq!(
            bytes.len() as u64,
            elements * case.dtype.size() as u64,
            "{case:?} decoded to the wrong size"
        );
    }
}

/// An encode request taken from a fuzz input: f32 data, its shape and an absolute bound.
#[derive(Debug)]
pub struct RoundTripCase {
    pub shape: Vec<u64>,
    pub data: Vec<u8>,
    pub bound: f64,
}

impl RoundTripCase {
    /// Layout: a bound selector byte, a row-count byte, then the f32 values (little-endian,
    /// whole values only, at most [`MAX_ELEMENTS`] / 16 of them so encoding stays fast). The
    /// selector picks a bound from zero through powers of ten to a huge one; rows are
    /// `1 + byte % 8`, cut to a divisor of the value count.
    pub fn parse(data: &[u8]) -> Option<RoundTripCase> {
        const BOUNDS: [f64; 8] = [0.0, 1e-6, 1e-4, 1e-2, 0.1, 1.0, 1e3, 1e30];
        let mut input = Input::new(data);
        let bound = BOUNDS[usize::from(input.u8()?) % BOUNDS.len()];
        let rows = u64::from(1 + input.u8()? % 8);
        let values = input.rest();
        let count = (values.len() / 4).min((MAX_ELEMENTS / 16) as usize) as u64;
        let rows = (1..=rows).rev().find(|r| count.is_multiple_of(*r)).unwrap_or(1);
        let shape = if rows > 1 {
            vec![rows, count / rows]
        } else {
            vec![count]
        };
        Some(RoundTripCase {
            shape,
            data: values[..count as usize * 4].to_vec(),
            bound,
        })
    }
}

/// Encodes f32 data with the quant, pwl and lossless methods, decodes it, and checks the
/// contract: lossless is bit-exact; lossy keeps every finite value within the bound and every
/// NaN or infinity bit-exact.
pub fn codec_roundtrip(data: &[u8]) {
    let Some(case) = RoundTripCase::parse(data) else {
        return;
    };
    let bound = Bound::Abs(case.bound);
    let methods = [
        Method::Lossless,
        Method::Quant {
            bound,
            options: Default::default(),
        },
        Method::Pwl {
            bound,
            options: Default::default(),
        },
    ];
    for method in methods {
        round_trip(&case, &method);
    }
}

fn round_trip(case: &RoundTripCase, method: &Method) {
    let tensor = TensorRef {
        dtype: DType::F32,
        shape: &case.shape,
        data: &case.data,
    };
    let encoded = pwlc_codecs::encode(tensor, method)
        .unwrap_or_else(|e| panic!("{method:?} failed to encode {case:?}: {e}"));
    let decoded = pwlc_codecs::decode(encoded.codec, DType::F32, &case.shape, &encoded.payload)
        .unwrap_or_else(|e| panic!("{method:?} failed to decode its own payload: {e}"));
    assert_eq!(decoded.len(), case.data.len(), "{method:?}: wrong length");
    let pairs = case.data.chunks_exact(4).zip(decoded.chunks_exact(4));
    for (i, (a, b)) in pairs.enumerate() {
        let a = f32::from_le_bytes([a[0], a[1], a[2], a[3]]);
        let b = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let exact = !method.is_lossy() || !a.is_finite();
        // Bounds are applied as `f32` (`Bound::per_row`), so that is the bound to check.
        let ok = if exact {
            a.to_bits() == b.to_bits()
        } else {
            (f64::from(a) - f64::from(b)).abs() <= f64::from(case.bound as f32)
        };
        assert!(ok, "{method:?}, element {i}: {a:e} decoded as {b:e}");
    }
}

/// A folder private to this fuzzing process for the model files of the reader targets.
fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("cannot create a temporary folder"))
        .path()
}

/// `scratch()/folder/model.ext` for `format`. Input and output share the file name because
/// some formats name their tensor after the file (`.npy`).
fn scratch_file(folder: &str, format: Format) -> PathBuf {
    let dir = scratch().join(folder);
    std::fs::create_dir_all(&dir).expect("cannot create a scratch folder");
    dir.join(format!("model.{}", format.extension()))
}

/// Reads `data` as a model file of `format`. If it parses, writes it back with its own layout
/// and tensors, and checks that the written file reads back to the same tensors.
pub fn model(format: Format, data: &[u8]) {
    let input = scratch_file("in", format);
    std::fs::write(&input, data).expect("cannot write the fuzz input to the scratch folder");
    let Ok(model) = pwlc_models::read_as(format, &input) else {
        return;
    };
    let output = scratch_file("out", format);
    if pwlc_models::write(format, &model.layout, &model.tensors, &output).is_err() {
        return;
    }
    let again = pwlc_models::read_as(format, &output)
        .unwrap_or_else(|e| panic!("{format}: a written file does not read back: {e}"));
    assert_same_tensors(&model.tensors, &again.tensors, format);
}

fn assert_same_tensors(before: &[Tensor], after: &[Tensor], format: Format) {
    assert_eq!(before.len(), after.len(), "{format}: tensor count changed");
    for (a, b) in before.iter().zip(after) {
        assert_eq!(
            a, b,
            "{format}: tensor '{}' changed on a round trip",
            a.name
        );
    }
}
