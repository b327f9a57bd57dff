//! Image preprocessing as torchvision's `Resize(resize)`, `CenterCrop(size)`, `ToTensor()`,
//! `Normalize(mean, std)` on a PIL image.

use std::path::Path;

use image::imageops::{self, FilterType};
use image::{DynamicImage, RgbImage};
use serde::{Deserialize, Serialize};

use crate::EvalError;

/// How an image becomes a network input: RGB; resize so the shorter side is `resize` (bilinear,
/// antialiased as PIL's `BILINEAR`); center-crop `size`×`size`; scale to [0, 1]; subtract `mean`
/// and divide by `std` per channel. The result is CHW `f32`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// Side of the square center crop (the network's input height and width).
    pub size: u32,
    /// Length the shorter image side is resized to before cropping.
    pub resize: u32,
    /// Per-channel (R, G, B) mean subtracted after scaling to [0, 1].
    pub mean: [f32; 3],
    /// Per-channel (R, G, B) standard deviation divided by after subtracting the mean.
    pub std: [f32; 3],
}

impl Preprocess {
    /// torchvision's ImageNet preprocessing: 256 → 224, ImageNet mean and std.
    pub const TORCHVISION: Preprocess = Preprocess {
        size: 224,
        resize: 256,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };

    /// EfficientNet-Lite preprocessing: 256 → 224, mean 0.498 and std 0.502 on every channel.
    pub const LITE: Preprocess = Preprocess {
        size: 224,
        resize: 256,
        mean: [0.498; 3],
        std: [0.502; 3],
    };

    /// The preprocessing of a known model (`mobilenet_v2`, `efficientnet_lite0`), by its name or
    /// its file stem (`mobilenet_v2.onnx` also matches).
    pub fn for_model(name: &str) -> Option<Preprocess> {
        let stem = name.strip_suffix(".onnx").unwrap_or(name);
        match stem {
            "mobilenet_v2" => Some(Preprocess::TORCHVISION),
            "efficientnet_lite0" => Some(Preprocess::LITE),
            _ => None,
        }
    }

    /// Number of `f32` values one preprocessed image holds (3 × size × size).
    pub fn item_len(&self) -> usize {
        3 * self.size as usize * self.size as usize
    }

    /// Decodes the image file at `path` (JPEG or PNG) and preprocesses it.
    pub fn load(&self, path: &Path) -> Result<Vec<f32>, EvalError> {
        let image = image::ImageReader::open(path)
            .map_err(|source| EvalError::io(path, source))?
            .with_guessed_format()
            .map_err(|source| EvalError::io(path, source))?
            .decode()
            .map_err(|source| EvalError::Decode {
                path: path.to_path_buf(),
                source,
            })?;
        self.apply(&image)
    }

    /// Preprocesses a decoded image into CHW `f32` values.
    pub fn apply(&self, image: &DynamicImage) -> Result<Vec<f32>, EvalError> {
        self.check()?;
        let rgb = image.to_rgb8();
        let (width, height) = resized_dimensions(rgb.width(), rgb.height(), self.resize)?;
        // `imageops::resize` with `Triangle` is the same separable convolution as PIL's
        // antialiased BILINEAR: a triangle kernel whose support grows with the downscale factor,
        // centred at (x + 0.5) * scale. It keeps the intermediate pass in f32 where PIL rounds
        // to u8, so values may differ by one grey level.
        let resized = imageops::resize(&rgb, width, height, FilterType::Triangle);
        Ok(self.crop_and_normalize(&resized))
    }

    /// Rejects parameters that cannot produce a crop.
    fn check(&self) -> Result<(), EvalError> {
        if self.size == 0 || self.size > self.resize {
            return Err(EvalError::Preprocess(format!(
                "crop size {} must be between 1 and the resize length {}",
                self.size, self.resize
            )));
        }
        if self.std.contains(&0.0) {
            return Err(EvalError::Preprocess(format!(
                "std {:?} has a zero channel",
                self.std
            )));
        }
        Ok(())
    }

    /// Takes the center `size`×`size` square of `image` (at least that large) as normalized CHW.
    fn crop_and_normalize(&self, image: &RgbImage) -> Vec<f32> {
        let size = self.size;
        let left = center_offset(image.width() - size);
        let top = center_offset(image.height() - size);
        let plane = (size * size) as usize;
        let mut out = vec![0.0f32; 3 * plane];
        for y in 0..size {
            for x in 0..size {
                let pixel = image.get_pixel(left + x, top + y);
                let at = (y * size + x) as usize;
                for channel in 0..3 {
                    let scaled = f32::from(pixel[channel]) / 255.0;
                    out[channel * plane + at] = (scaled - self.mean[channel]) / self.std[channel];
                }
            }
        }
        out
    }
}

/// The size of an image whose shorter side becomes `shorter`, the longer side scaled in
/// proportion and truncated, as torchvision's `Resize(int)`.
fn resized_dimensions(width: u32, height: u32, shorter: u32) -> Result<(u32, u32), EvalError> {
    if width == 0 || height == 0 {
        return Err(EvalError::Preprocess(format!(
            "image has no pixels ({width}x{height})"
        )));
    }
    let scale_long = |long: u32, short: u32| -> u32 {
        let scaled = u64::from(shorter) * u64::from(long) / u64::from(short);
        u32::try_from(scaled).unwrap_or(u32::MAX)
    };
    Ok(if width <= height {
        (shorter, scale_long(height, width))
    } else {
        (scale_long(width, height), shorter)
    })
}

/// Offset of a centred crop leaving `excess` pixels, `round(excess / 2)` with Python's
/// round-half-to-even as torchvision's `CenterCrop`.
fn center_offset(excess: u32) -> u32 {
    let half = excess / 2;
    let is_tie = excess % 2 == 1;
    if is_tie && half % 2 == 1 {
        half + 1
    } else {
        half
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorter_side_becomes_resize_and_longer_is_truncated() {
        assert_eq!(resized_dimensions(500, 375, 256).unwrap(), (341, 256));
        assert_eq!(resized_dimensions(375, 500, 256).unwrap(), (256, 341));
        assert_eq!(resized_dimensions(300, 300, 256).unwrap(), (256, 256));
        assert!(resized_dimensions(0, 10, 256).is_err());
    }

    #[test]
    fn center_offset_rounds_half_to_even() {
        // Python: round(117 / 2) == 58, round(119 / 2) == 60, round(32 / 2) == 16.
        assert_eq!(center_offset(117), 58);
        assert_eq!(center_offset(119), 60);
        assert_eq!(center_offset(32), 16);
        assert_eq!(center_offset(1), 0);
        assert_eq!(center_offset(3), 2);
    }

    #[test]
    fn presets_follow_the_model_names() {
        assert_eq!(
            Preprocess::for_model("mobilenet_v2"),
            Some(Preprocess::TORCHVISION)
        );
        assert_eq!(
            Preprocess::for_model("efficientnet_lite0.onnx"),
            Some(Preprocess::LITE)
        );
        assert_eq!(Preprocess::for_model("resnet50"), None);
    }

    #[test]
    fn crop_larger_than_resize_is_an_error() {
        let bad = Preprocess {
            size: 300,
            ..Preprocess::TORCHVISION
        };
        let image = DynamicImage::new_rgb8(10, 10);
        assert!(matches!(bad.apply(&image), Err(EvalError::Preprocess(_))));
    }
}
