//! Publisher tooling for Weft updates: the signing keys ([`keys`]) and the signed TUF
//! repository of releases ([`repository`]: init, publish with deltas, rollout, halt,
//! timestamp refresh). The `weft-release` binary is its command line. It is not the
//! client: nothing here checks what a client trusts beyond loading the repository as a
//! client would before changing it.

pub mod keys;
pub mod repository;
