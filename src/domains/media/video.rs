//! Videos keep their file as sent (re-encoding is the ML and transcoding issues' business);
//! their duration and dimensions are read from the container's boxes, which also proves the file
//! is a readable MP4/QuickTime and not something else with an `ftyp` in front.

use std::path::Path;

use crate::core::error::{AppError, AppResult, Code};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoInfo {
    pub duration_ms: i64,
    pub width: u32,
    pub height: u32,
}

fn unreadable(detail: impl std::fmt::Display) -> AppError {
    AppError::new(
        Code::MediaUnreadable,
        format!("the video could not be read: {detail}"),
    )
}

/// Reads the first video track's duration and dimensions.
pub fn probe(path: &Path) -> AppResult<VideoInfo> {
    let file =
        std::fs::File::open(path).map_err(|e| AppError::internal(format!("media storage: {e}")))?;
    let mut reader = std::io::BufReader::new(file);
    let context = mp4parse::read_mp4(&mut reader).map_err(|e| unreadable(format!("{e:?}")))?;
    let track = context
        .tracks
        .iter()
        .find(|t| t.track_type == mp4parse::TrackType::Video)
        .ok_or_else(|| unreadable("it has no video track"))?;
    let tkhd = track
        .tkhd
        .as_ref()
        .ok_or_else(|| unreadable("its video track has no header"))?;
    let duration_ms = match (track.duration, track.timescale) {
        (Some(d), Some(scale)) if scale.0 > 0 => {
            i64::try_from(u128::from(d.0) * 1000 / u128::from(scale.0))
                .map_err(|_| unreadable("its duration is out of range"))?
        }
        _ => return Err(unreadable("its video track has no duration")),
    };
    // Track dimensions are 16.16 fixed point.
    let (width, height) = (tkhd.width >> 16, tkhd.height >> 16);
    if width == 0 || height == 0 {
        return Err(unreadable("its video track has no picture size"));
    }
    Ok(VideoInfo {
        duration_ms,
        width,
        height,
    })
}
