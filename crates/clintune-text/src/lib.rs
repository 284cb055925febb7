//! Text as clintune's models see it: tokenizers ([`tokenizer`], with a fast
//! byte-level BPE path in [`bytelevel`]), chat templates ([`template`]) and
//! chat messages ([`Message`]).
//!
//! Curation encodes training examples with them; training, `generate`,
//! `score` and evaluation decode and prompt with the same code, so inference
//! does not depend on the curation stage.

pub mod bytelevel;
pub mod message;
pub mod pyjson;
pub mod template;
pub mod tokenizer;

pub use message::Message;
