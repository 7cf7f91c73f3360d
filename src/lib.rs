//! ninja-fs: NINJA 2.0's ROM normalization made exact, the patch formats
//! people download today, and a filesystem that shows both.

pub mod patch;
pub mod system;
