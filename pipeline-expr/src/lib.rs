//! The expression language of Sextant pipelines: `{{...}}` references inside strings, and the
//! `when` conditions built from them.
//!
//! Its own crate so that what checks a pipeline's expressions without running anything (the
//! pipeline spec loader, and the experiment crate's validation of a Pipeline trial template) can
//! depend on it without the executor's async runtime. Pure: no I/O, no async runtime, nothing
//! else of ours; `sextant-pipeline` re-exports both modules.
//!
//! # Layout
//! - [`template`]: `{{...}}` references, parsed once into a [`template::Template`].
//! - [`condition`]: the `when` language over templates: parsed, bounded, evaluated.

pub mod condition;
pub mod template;
