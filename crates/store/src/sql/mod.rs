//! What the SQL backends share (feature `sql`): the rows of their tables and the
//! queue of their group commits. A backend on another kind of database needs none
//! of it.
//!
//! - [`rows`]: the columns of each table, in the order both backends select and
//!   insert them, and the conversions between records and those columns. Reading
//!   checks every value into its record type, so a row that no longer parses
//!   (edited by hand, written by another version) is [`StoreError::Corrupt`], never
//!   a panic. The SQL itself, and how a driver reads a column, stay in the backends.
//! - [`GroupQueue`]: the calls waiting for the next group commit (or batched
//!   lookup), and the handover of the one runner that takes them in batches.
//! - [`paging`]: the statements of a page of service users
//!   ([`UserPageQuery`](crate::UserPageQuery)), its filter a condition with bound
//!   parameters, for either backend's dialect.
//!
//! [`StoreError::Corrupt`]: crate::StoreError::Corrupt

mod group;
pub mod paging;
pub mod rows;

pub use group::GroupQueue;
