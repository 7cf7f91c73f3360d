//! ninja-fs: NINJA 2.0's ROM normalization made exact, the patch formats
//! people download today, and a filesystem that shows both.

pub mod apply;
pub mod backing;
pub mod cache;
pub mod create;
pub mod dat;
pub mod digest;
pub mod files;
pub mod fs;
pub mod library;
pub mod logging;
pub mod mount;
pub mod patch;
pub mod report;
pub mod system;
pub mod text;
pub mod vfs;
pub mod views;
pub mod xdg;
