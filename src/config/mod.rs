//! Configuration values that every layer reads, with no clerk imports of
//! their own: the TOML table reader behind bot files and step kinds, the
//! value types and checks it converts to, the diagnostics it reports,
//! secrets, and who may read the files clerk writes.

pub mod diagnostics;
pub mod permissions;
pub mod secrets;
mod table;
mod values;

pub use diagnostics::Diagnostic;
pub use table::{Problem, Sink, TableReader, closest, one_of, quoted_list};
pub use values::{
    Fraction, FromToml, JsonTable, MAX_NAME_LEN, Positive, at_least_a_second, found, positive,
    references, secret_reference, valid_name,
};
