//! The font plotters draws text with: DejaVu Sans from the system, registered once per
//! process. Shared by the bench's plots and the Jepsen harness's.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::style::{FontStyle, register_font};

/// Where DejaVu Sans lives on Debian/Ubuntu, Fedora and Arch, in that order.
pub const FONT_PATHS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Errors from finding or registering the font.
#[derive(Debug, thiserror::Error)]
pub enum FontError {
    /// No DejaVu Sans font file was found; plotters draws no text without one.
    #[error(
        "no DejaVuSans.ttf found (looked in {}); install the Debian package fonts-dejavu-core",
        FONT_PATHS.join(", ")
    )]
    NotFound,
    /// The font file exists but could not be read.
    #[error("reading font {path}: {source}")]
    Read {
        /// The font file.
        path: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// The font file was read but is not a font plotters can use.
    #[error("font {path} is not a valid TrueType/OpenType font")]
    Invalid {
        /// The font file.
        path: PathBuf,
    },
}

/// Only a font file that was read gets here, so a missing font is retried on the next call
/// while the bytes of a present one are leaked at most once per process.
static FONT: OnceLock<Result<(), PathBuf>> = OnceLock::new();

/// Registers DejaVu Sans as plotters' "sans-serif", once per process.
pub fn ensure_font() -> Result<(), FontError> {
    if let Some(registered) = FONT.get() {
        return registered
            .clone()
            .map_err(|path| FontError::Invalid { path });
    }
    let path = FONT_PATHS
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .ok_or(FontError::NotFound)?;
    let bytes = std::fs::read(path).map_err(|source| FontError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    FONT.get_or_init(|| {
        // plotters keeps a `&'static` to the font for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        register_font("sans-serif", FontStyle::Normal, bytes).map_err(|_| path.to_path_buf())
    })
    .clone()
    .map_err(|path| FontError::Invalid { path })
}
