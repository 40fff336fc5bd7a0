//! PNG thumbnails of uploaded images, at most 320×320. Decoding a large image takes
//! hundreds of megabytes and seconds of CPU, so it happens off the async threads, two at a
//! time on the whole server, and only for images whose declared size is within
//! `max_image_pixels` (checked from the header, before any pixel is decoded).

use std::io::Cursor;
use std::sync::Arc;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use tokio::sync::Semaphore;
use tracing::debug;

use super::sniff::FileType;

/// The box a thumbnail fits in.
pub const THUMB_SIZE: u32 = 320;
/// Decodes at once on the whole server.
pub const DECODES_AT_ONCE: usize = 2;
/// The most bytes a decoded pixel takes (16-bit RGBA), for the allocation limit.
const BYTES_PER_PIXEL: u64 = 8;
/// What decoders need besides the pixels (rows, inflate windows, Huffman tables, metadata).
const DECODER_WORKSPACE: u64 = 16 * 1024 * 1024;

/// The image declares more pixels than allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the image is {width}×{height} pixels, more than the {max} allowed")]
pub struct TooManyPixels {
    pub width: u64,
    pub height: u64,
    pub max: u64,
}

/// Makes thumbnails, a bounded number at a time.
#[derive(Debug)]
pub struct Thumbnailer {
    permits: Arc<Semaphore>,
    max_pixels: u64,
}

impl Thumbnailer {
    pub fn new(max_pixels: u64) -> Self {
        Thumbnailer {
            permits: Arc::new(Semaphore::new(DECODES_AT_ONCE)),
            max_pixels,
        }
    }

    /// The PNG thumbnail of an image, `None` when it cannot be decoded (it is then stored
    /// without one: its header was that of an image, and a viewer may still open it), or
    /// `Err` when it is larger than `max_image_pixels`. Waits for a decode slot.
    pub async fn make(
        &self,
        data: bytes::Bytes,
        kind: FileType,
    ) -> Result<Option<Vec<u8>>, TooManyPixels> {
        let Some(format) = format_of(kind) else {
            return Ok(None);
        };
        // The permit goes with the decode, so a client that leaves does not free its slot
        // while its decode still runs.
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            return Ok(None);
        };
        let max_pixels = self.max_pixels;
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            render(&data, format, max_pixels)
        });
        match task.await {
            Ok(made) => made,
            Err(e) => {
                // A decoder that panicked on this input: the file is kept, unpreviewed.
                tracing::warn!(error = %e, "thumbnail decode failed");
                Ok(None)
            }
        }
    }
}

fn format_of(kind: FileType) -> Option<ImageFormat> {
    match kind {
        FileType::Png => Some(ImageFormat::Png),
        FileType::Jpeg => Some(ImageFormat::Jpeg),
        FileType::Gif => Some(ImageFormat::Gif),
        FileType::Webp => Some(ImageFormat::WebP),
        _ => None,
    }
}

/// The decode limits for `max_pixels`: no side longer than the whole budget, and no more
/// memory than the largest allowed image takes at 16 bits per channel, with some room for
/// the decoder's own buffers.
pub fn limits(max_pixels: u64) -> Limits {
    let side = u32::try_from(max_pixels).unwrap_or(u32::MAX);
    let mut limits = Limits::default();
    limits.max_image_width = Some(side);
    limits.max_image_height = Some(side);
    limits.max_alloc = Some(
        max_pixels
            .saturating_mul(BYTES_PER_PIXEL)
            .saturating_add(DECODER_WORKSPACE),
    );
    limits
}

/// Decodes, scales into [`THUMB_SIZE`] and encodes as PNG (blocking).
pub fn render(
    data: &[u8],
    format: ImageFormat,
    max_pixels: u64,
) -> Result<Option<Vec<u8>>, TooManyPixels> {
    let too_many = |width: u64, height: u64| TooManyPixels {
        width,
        height,
        max: max_pixels,
    };
    let mut reader = ImageReader::with_format(Cursor::new(data), format);
    reader.limits(limits(max_pixels));
    let mut decoder = match reader.into_decoder() {
        Ok(d) => d,
        // A side over the limit is refused while the header is read.
        Err(image::ImageError::Limits(e)) => {
            debug!(error = %e, "image over the decode limits");
            return Err(too_many(u64::MAX, u64::MAX));
        }
        Err(e) => {
            debug!(error = %e, "image header unreadable: no thumbnail");
            return Ok(None);
        }
    };
    let (width, height) = decoder.dimensions();
    let (w, h) = (u64::from(width), u64::from(height));
    if w.saturating_mul(h) > max_pixels {
        return Err(too_many(w, h));
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let image = match DynamicImage::from_decoder(decoder) {
        Ok(i) => i,
        Err(image::ImageError::Limits(e)) => {
            debug!(error = %e, "image over the decode limits");
            return Err(too_many(w, h));
        }
        Err(e) => {
            debug!(error = %e, "image undecodable: no thumbnail");
            return Ok(None);
        }
    };
    let mut thumb = if width > THUMB_SIZE || height > THUMB_SIZE {
        image.thumbnail(THUMB_SIZE, THUMB_SIZE)
    } else {
        image
    };
    // Photos are often stored sideways with an Exif note on how to turn them.
    thumb.apply_orientation(orientation);
    let thumb = if thumb.color().has_alpha() {
        DynamicImage::ImageRgba8(thumb.to_rgba8())
    } else {
        DynamicImage::ImageRgb8(thumb.to_rgb8())
    };
    let mut png = Vec::new();
    match thumb.write_to(&mut Cursor::new(&mut png), ImageFormat::Png) {
        Ok(()) => Ok(Some(png)),
        Err(e) => {
            debug!(error = %e, "thumbnail not encoded");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut out), format)
            .expect("encode");
        out
    }

    fn dimensions(png: &[u8]) -> (u32, u32) {
        let img = image::load_from_memory_with_format(png, ImageFormat::Png).expect("png");
        (img.width(), img.height())
    }

    fn chunk(png: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        png.extend_from_slice(&body);
        png.extend_from_slice(&crc32(&body).to_be_bytes());
    }

    /// A PNG whose IHDR declares `width`×`height`, followed by the start of its pixel data
    /// (a decoder reads the header up to the first IDAT) and nothing more: what an upload
    /// claiming a huge image costs its sender, a few dozen bytes.
    fn png_header(width: u32, height: u32) -> Vec<u8> {
        let mut ihdr = width.to_be_bytes().to_vec();
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        chunk(&mut png, b"IHDR", &ihdr);
        // A zlib stream header and a first deflate block of zeros.
        chunk(&mut png, b"IDAT", &[0x78, 0x9c, 0x63, 0x00, 0x00]);
        png
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn thumbnails_fit_the_box_and_keep_the_aspect() {
        let wide = DynamicImage::new_rgb8(1000, 500);
        for format in [
            ImageFormat::Png,
            ImageFormat::Jpeg,
            ImageFormat::Gif,
            ImageFormat::WebP,
        ] {
            let data = encoded(wide.clone(), format);
            let png = render(&data, format, 40_000_000)
                .expect("within the limit")
                .expect("a thumbnail");
            assert_eq!(dimensions(&png), (320, 160), "{format:?}");
        }
        // Small images are not enlarged.
        let small = encoded(DynamicImage::new_rgba8(40, 30), ImageFormat::Png);
        let png = render(&small, ImageFormat::Png, 40_000_000)
            .expect("ok")
            .expect("a thumbnail");
        assert_eq!(dimensions(&png), (40, 30));
    }

    #[test]
    fn images_over_the_pixel_limit_are_refused_from_their_header() {
        // 100,000 × 100,000 RGBA would take 40 GB to decode.
        let huge = png_header(100_000, 100_000);
        let err = render(&huge, ImageFormat::Png, 40_000_000).expect_err("refused");
        assert_eq!((err.width, err.height), (100_000, 100_000));
        // The limit is the product, not a side: a long strip within it is fine to read.
        let strip = encoded(DynamicImage::new_rgb8(2000, 10), ImageFormat::Png);
        assert!(render(&strip, ImageFormat::Png, 20_000).is_ok());
        assert!(render(&strip, ImageFormat::Png, 19_999).is_err());
    }

    #[test]
    fn undecodable_images_get_no_thumbnail() {
        let mut truncated = encoded(DynamicImage::new_rgb8(500, 500), ImageFormat::Png);
        truncated.truncate(60);
        assert_eq!(render(&truncated, ImageFormat::Png, 40_000_000), Ok(None));
        assert_eq!(
            render(b"\xff\xd8\xff\xe0garbage", ImageFormat::Jpeg, 40_000_000),
            Ok(None)
        );
    }

    #[tokio::test]
    async fn only_images_are_decoded() {
        let t = Thumbnailer::new(1_000_000);
        let data = bytes::Bytes::from(encoded(DynamicImage::new_rgb8(10, 10), ImageFormat::Png));
        assert!(
            t.make(data.clone(), FileType::Png)
                .await
                .expect("ok")
                .is_some()
        );
        assert_eq!(t.make(data, FileType::Pdf).await, Ok(None));
        assert_eq!(t.permits.available_permits(), DECODES_AT_ONCE);
    }
}
