//! End-to-end tests of the `pwlc` binary, in one test executable so that the workspace links
//! the binary's dependencies (tract among them) once for all of them.

mod accuracy;
mod bench;
mod commands;
mod common;
mod corruption;
