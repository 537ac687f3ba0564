//! The runtime: the one place where the pipeline's stages meet.

/// The runtime.
pub struct Runtime {}

/// Builds a [`Runtime`].
pub struct RuntimeBuilder {}
