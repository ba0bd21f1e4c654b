//! Photos are decoded and encoded again, never stored as sent: what comes back out is pixels
//! only — no EXIF (GPS, camera serials), no XMP, no comments, no trailing bytes. The EXIF
//! orientation is applied first, so a photo shot sideways stays upright without its metadata.
//!
//! A decompression bomb (a few KB that claim gigapixels) is refused from its header, before a
//! pixel is decoded, and the decoder's allocations are capped besides.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{DynamicImage, ImageDecoder, ImageEncoder, ImageFormat, ImageReader};

use super::sniff::FileType;
use crate::config::MediaConfig;
use crate::core::error::{AppError, AppResult, Code};

/// One encoded picture.
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub file_type: FileType,
    pub width: u32,
    pub height: u32,
}

/// What an uploaded photo becomes: the full picture, stripped, and its two smaller variants.
pub struct Processed {
    pub original: Encoded,
    pub display: Encoded,
    pub thumb: Encoded,
}

fn unreadable(e: impl std::fmt::Display) -> AppError {
    AppError::new(
        Code::MediaUnreadable,
        format!("the photo could not be decoded: {e}"),
    )
}

fn too_large(w: u64, h: u64, max: u64) -> AppError {
    AppError::new(
        Code::ImageTooLarge,
        format!("the photo is {w}×{h} pixels; at most {max} pixels are accepted"),
    )
}

/// Decodes `bytes` (of the sniffed `file_type`), applies its orientation and makes the variants.
pub fn process(bytes: &[u8], file_type: FileType, config: &MediaConfig) -> AppResult<Processed> {
    let format = match file_type {
        FileType::Jpeg => ImageFormat::Jpeg,
        FileType::Png => ImageFormat::Png,
        FileType::Webp => ImageFormat::WebP,
        other => return Err(unreadable(format!("{} is not a photo", other.mime()))),
    };
    let max = config.photo_pixels_max;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    // Room for the decoded picture at 4 bytes a pixel (16-bit PNGs twice that) and the
    // decoder's own buffers: a file claiming less but allocating more is cut off too.
    limits.max_alloc = Some(max.saturating_mul(8) + (64 << 20));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(unreadable)?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > max {
        return Err(too_large(w.into(), h.into(), max));
    }
    let orientation = decoder.orientation().map_err(unreadable)?;
    let mut picture = DynamicImage::from_decoder(decoder).map_err(|e| match e {
        image::ImageError::Limits(_) => too_large(w.into(), h.into(), max),
        e => unreadable(e),
    })?;
    picture.apply_orientation(orientation);
    let original = encode(&picture, config.jpeg_quality)?;
    // Each variant is made from the next larger one: far fewer pixels to filter.
    let display_picture = shrink(&picture, config.display_px);
    let display = encode(&display_picture, config.jpeg_quality)?;
    let thumb = encode(
        &shrink(&display_picture, config.thumb_px),
        config.jpeg_quality,
    )?;
    Ok(Processed {
        original,
        display,
        thumb,
    })
}

/// The picture scaled down so its long side is at most `long_side` (never up), by area
/// averaging: as good as a filter for shrinking, and several times faster.
fn shrink(picture: &DynamicImage, long_side: u32) -> DynamicImage {
    if picture.width().max(picture.height()) <= long_side {
        return picture.clone();
    }
    picture.thumbnail(long_side, long_side)
}

/// JPEG, or PNG when the picture has transparency (JPEG has none).
fn encode(picture: &DynamicImage, quality: u8) -> AppResult<Encoded> {
    let mut bytes = Vec::new();
    let (width, height) = (picture.width(), picture.height());
    let file_type = if picture.has_alpha() {
        let rgba = picture.to_rgba8();
        PngEncoder::new(&mut bytes)
            .write_image(&rgba, width, height, image::ExtendedColorType::Rgba8)
            .map_err(|e| AppError::internal(format!("encoding a PNG: {e}")))?;
        FileType::Png
    } else {
        let rgb = picture.to_rgb8();
        JpegEncoder::new_with_quality(&mut bytes, quality)
            .write_image(&rgb, width, height, image::ExtendedColorType::Rgb8)
            .map_err(|e| AppError::internal(format!("encoding a JPEG: {e}")))?;
        FileType::Jpeg
    };
    Ok(Encoded {
        bytes,
        file_type,
        width,
        height,
    })
}
