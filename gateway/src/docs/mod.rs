//! Documents as people see them: metadata, roles and shares, the trash.

pub mod catalog;
pub mod import_gate;
pub mod meta;
pub mod open_quota;
pub mod trash;

pub use catalog::{Catalog, CatalogError};
pub use meta::{DocMeta, Role, Share, ShareKind};
