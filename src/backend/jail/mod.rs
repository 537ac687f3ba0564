//! The process jail: native tools under namespaces, Landlock, seccomp and resource limits.
//! This file only declares the seccomp module; the rest of the jail lands separately.

pub mod seccomp;
