//! Secret references: the batch call to the sidecar, the table of last good values, and the
//! refresh schedule.

pub mod batch;
pub mod refresh;
pub mod table;

pub use batch::{answer_of, parse_answer, request_body, Answer, BatchError};
pub use refresh::Refresh;
pub use table::{Note, SecretTable};
