//! What a file is, by its first bytes (never by the name or the declared type alone).

use super::model::MediaKind;

/// The types Duet stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    Jpeg,
    Png,
    Webp,
    Mp4,
    QuickTime,
    Pdf,
}

impl FileType {
    pub fn mime(self) -> &'static str {
        match self {
            FileType::Jpeg => "image/jpeg",
            FileType::Png => "image/png",
            FileType::Webp => "image/webp",
            FileType::Mp4 => "video/mp4",
            FileType::QuickTime => "video/quicktime",
            FileType::Pdf => "application/pdf",
        }
    }

    pub fn from_mime(mime: &str) -> Option<FileType> {
        let essence = mime
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        [
            FileType::Jpeg,
            FileType::Png,
            FileType::Webp,
            FileType::Mp4,
            FileType::QuickTime,
            FileType::Pdf,
        ]
        .into_iter()
        .find(|t| t.mime() == essence)
    }

    /// The types each kind accepts.
    pub fn allowed(kind: MediaKind) -> &'static [FileType] {
        match kind {
            MediaKind::Photo => &[FileType::Jpeg, FileType::Png, FileType::Webp],
            MediaKind::Video => &[FileType::Mp4, FileType::QuickTime],
            MediaKind::KycDocument => &[FileType::Jpeg, FileType::Png, FileType::Pdf],
        }
    }
}

/// The type the bytes start like, if it is one Duet stores.
pub fn sniff(head: &[u8]) -> Option<FileType> {
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some(FileType::Jpeg);
    }
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some(FileType::Png);
    }
    if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        return Some(FileType::Webp);
    }
    if head.starts_with(b"%PDF-") {
        return Some(FileType::Pdf);
    }
    // ISO base media: a box size, then `ftyp` and the major brand.
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        return Some(if &head[8..12] == b"qt  " {
            FileType::QuickTime
        } else {
            FileType::Mp4
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_type_is_told_by_its_first_bytes() {
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0rest"), Some(FileType::Jpeg));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest"), Some(FileType::Png));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(FileType::Webp));
        assert_eq!(sniff(b"%PDF-1.7"), Some(FileType::Pdf));
        assert_eq!(sniff(b"\0\0\0\x18ftypisom"), Some(FileType::Mp4));
        assert_eq!(sniff(b"\0\0\0\x14ftypqt  "), Some(FileType::QuickTime));
        assert_eq!(sniff(b"GIF89a"), None);
        assert_eq!(sniff(b"<svg"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn declared_types_are_read_by_their_essence() {
        assert_eq!(FileType::from_mime("image/JPEG"), Some(FileType::Jpeg));
        assert_eq!(
            FileType::from_mime("video/mp4; codecs=avc1"),
            Some(FileType::Mp4)
        );
        assert_eq!(FileType::from_mime("image/gif"), None);
        assert!(!FileType::allowed(MediaKind::Photo).contains(&FileType::Pdf));
        assert!(FileType::allowed(MediaKind::KycDocument).contains(&FileType::Pdf));
    }
}
