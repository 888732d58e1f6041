//! What kind of document a file is, by its first bytes, and the checks
//! made on an image before it is decoded: a header that claims a gigantic
//! image is refused instead of allocated.

use super::DocumentError;

/// Most pixels an image may have (a 300 dpi A3 page is about 17.5 million).
pub const MAX_PIXELS: u64 = 100_000_000;

/// Image formats clerk reads, by their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Png,
    Jpeg,
    Tiff,
}

pub fn sniff(bytes: &[u8]) -> Option<ImageKind> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageKind::Png)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageKind::Jpeg)
    } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        Some(ImageKind::Tiff)
    } else {
        None
    }
}

/// Width and height an image's header claims, where it can be read cheaply.
pub fn claimed_size(kind: ImageKind, bytes: &[u8]) -> Option<(u64, u64)> {
    match kind {
        ImageKind::Png => {
            let w = u32::from_be_bytes(bytes.get(16..20)?.try_into().ok()?);
            let h = u32::from_be_bytes(bytes.get(20..24)?.try_into().ok()?);
            Some((u64::from(w), u64::from(h)))
        }
        ImageKind::Jpeg => {
            // Walk the segments to the frame header (SOF0–SOF15 but DHT,
            // JPG and DAC), which holds height and width.
            let mut i = 2;
            while i + 9 < bytes.len() {
                if bytes[i] != 0xFF {
                    return None;
                }
                let marker = bytes[i + 1];
                let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
                if (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
                    let h = u16::from_be_bytes([bytes[i + 5], bytes[i + 6]]);
                    let w = u16::from_be_bytes([bytes[i + 7], bytes[i + 8]]);
                    return Some((u64::from(w), u64::from(h)));
                }
                i += 2 + len;
            }
            None
        }
        // Leptonica reads TIFF headers itself; the pixel limit is checked on
        // what it decoded.
        ImageKind::Tiff => None,
    }
}

/// Refuse images whose header claims more pixels than the limit.
pub fn check_size(kind: ImageKind, bytes: &[u8]) -> Result<(), DocumentError> {
    if let Some((w, h)) = claimed_size(kind, bytes)
        && w.saturating_mul(h) > MAX_PIXELS
    {
        return Err(DocumentError::ImageTooLarge {
            width: w,
            height: h,
            limit: MAX_PIXELS,
        });
    }
    Ok(())
}

/// How many pages a TIFF holds: the length of its chain of image file
/// directories, counted without decoding any image.
pub fn tiff_page_count(bytes: &[u8]) -> Option<usize> {
    let big_endian = bytes.starts_with(b"MM");
    let u16_at = |at: usize| -> Option<u16> {
        let b: [u8; 2] = bytes.get(at..at + 2)?.try_into().ok()?;
        Some(if big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    let mut offset = usize::try_from(u32_at(4)?).ok()?;
    let mut pages = 0;
    while offset != 0 {
        let entries = usize::from(u16_at(offset)?);
        let next = usize::try_from(u32_at(offset + 2 + 12 * entries)?).ok()?;
        pages += 1;
        // Directories move forward in well-formed files; a chain that
        // loops back is cut where it does.
        if next <= offset || pages > 100_000 {
            break;
        }
        offset = next;
    }
    Some(pages)
}

/// The media type of a document by its first bytes, for the kinds clerk
/// reads (PDF, PNG, JPEG, TIFF); senders label them
/// `application/octet-stream` often enough.
pub fn media_type(bytes: &[u8]) -> Option<&'static str> {
    if super::pdf::header_offset(bytes).is_some() {
        return Some("application/pdf");
    }
    sniff(bytes).map(|kind| match kind {
        ImageKind::Png => "image/png",
        ImageKind::Jpeg => "image/jpeg",
        ImageKind::Tiff => "image/tiff",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiff_pages_are_counted_from_the_directory_chain() {
        // Little-endian header, then three directories with no entries at
        // 8, 14 and 20, the last pointing nowhere.
        let mut tiff = b"II*\0".to_vec();
        tiff.extend_from_slice(&8u32.to_le_bytes());
        for next in [14u32, 20, 0] {
            tiff.extend_from_slice(&0u16.to_le_bytes());
            tiff.extend_from_slice(&next.to_le_bytes());
        }
        assert_eq!(tiff_page_count(&tiff), Some(3));
        // A chain that points back is cut instead of followed forever.
        let mut looped = tiff.clone();
        looped[22..26].copy_from_slice(&8u32.to_le_bytes());
        assert_eq!(tiff_page_count(&looped), Some(3));
        assert_eq!(tiff_page_count(b"II*\0"), None);
    }

    #[test]
    fn image_headers_are_read_before_decoding() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&100_000u32.to_be_bytes());
        assert_eq!(sniff(&png), Some(ImageKind::Png));
        assert_eq!(claimed_size(ImageKind::Png, &png), Some((100_000, 100_000)));
        assert!(matches!(
            check_size(ImageKind::Png, &png),
            Err(DocumentError::ImageTooLarge { width: 100_000, .. })
        ));
        // A JPEG with an APP0 segment, then a baseline frame of 640x480.
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0x01,
            0xE0, 0x02, 0x80, 0x03,
        ];
        assert_eq!(claimed_size(ImageKind::Jpeg, &jpeg), Some((640, 480)));
        assert!(check_size(ImageKind::Jpeg, &jpeg).is_ok());
    }
}
