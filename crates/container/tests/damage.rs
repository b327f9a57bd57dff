//! Damage to a small container: every single-byte change and every truncation is detected.

mod common;

use common::{open_and_read_all, sample_info, write_f32};
use pwlc_container::ContainerError;

/// A container with padding after two of its payloads and an empty payload.
fn small() -> Vec<u8> {
    write_f32(
        &sample_info(),
        &[
            ("weight", &[1.0, -2.0, 3.5]),
            ("empty", &[]),
            ("bias", &[0.25]),
        ],
    )
}

#[test]
fn sample_has_padding_to_check() {
    let r = open_and_read_all(small()).unwrap();
    let padded = r.entries().iter().filter(|e| e.length % 8 != 0).count();
    assert_eq!(padded, 2);
}

#[test]
fn every_single_byte_change_is_detected() {
    let good = small();
    let mut undetected = Vec::new();
    for pos in 0..good.len() {
        for value in 0..=255u8 {
            if value == good[pos] {
                continue;
            }
            let mut bad = good.clone();
            bad[pos] = value;
            if open_and_read_all(bad).is_ok() {
                undetected.push((pos, value));
            }
        }
    }
    assert!(
        undetected.is_empty(),
        "undetected changes (byte, value): {undetected:?}"
    );
}

#[test]
fn every_truncation_is_detected() {
    let good = small();
    for len in 0..good.len() {
        let err = open_and_read_all(good[..len].to_vec());
        assert!(err.is_err(), "truncation to {len} bytes was accepted");
    }
}

#[test]
fn appended_bytes_are_detected() {
    let mut bad = small();
    bad.push(0);
    assert!(open_and_read_all(bad).is_err());
}

#[test]
fn damaged_payload_names_the_tensor() {
    let mut bad = small();
    bad[16] ^= 1; // first byte of the first payload
    let r = pwlc_container::Reader::from_bytes(bad).unwrap();
    let err = r.payload(0).unwrap_err();
    assert!(matches!(&err, ContainerError::Checksum { name } if name == "weight"));
    assert!(err.to_string().contains("weight"));
    assert!(r.payload(2).is_ok(), "other tensors stay readable");
}

#[test]
fn nonzero_padding_is_detected_by_the_tensor_before_it() {
    let mut bad = small();
    bad[16 + 12] = 7; // padding after the 12-byte first payload
    let r = pwlc_container::Reader::from_bytes(bad).unwrap();
    let err = r.payload(0).unwrap_err().to_string();
    assert!(err.contains("padding after tensor 'weight'"), "{err}");
}

#[test]
fn short_files_say_why() {
    let not_ours = open_and_read_all(b"hello".to_vec()).unwrap_err();
    assert!(matches!(not_ours, ContainerError::NotPwlc), "{not_ours}");
    let prefix = open_and_read_all(b"PWLC\r\n".to_vec()).unwrap_err();
    assert!(prefix.to_string().contains("truncated"), "{prefix}");
    let good = small();
    let text_mode: Vec<u8> = (0..good.len())
        .filter(|&i| !(good[i] == b'\r' && good.get(i + 1) == Some(&b'\n')))
        .map(|i| good[i])
        .collect();
    assert!(matches!(
        open_and_read_all(text_mode),
        Err(ContainerError::NotPwlc)
    ));
}

#[test]
fn truncated_file_on_disk_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.pwlc");
    let good = small();
    std::fs::write(&path, &good[..good.len() - 1]).unwrap();
    let err = pwlc_container::Reader::open(&path).unwrap_err().to_string();
    assert!(err.contains("truncated"), "{err}");
    std::fs::write(&path, b"").unwrap();
    let err = pwlc_container::Reader::open(&path).unwrap_err().to_string();
    assert!(err.contains("truncated"), "{err}");
}
