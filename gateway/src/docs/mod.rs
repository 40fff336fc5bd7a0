//! Documents as people see them: metadata, roles and shares, the trash.

pub mod catalog;
pub mod meta;
pub mod trash;

pub use catalog::{Catalog, CatalogError};
pub use meta::{DocMeta, Role, Share, ShareKind};
