//! Byte-level BPE tokenizer: training, loading and saving in the Hugging Face
//! `tokenizer.json` / `tokenizer_config.json` format, and encoding with byte
//! offsets.
//!
//! A tokenizer trained here is GPT-2 style (byte-level, no normalizer), so any
//! UTF-8 text encodes without unknown tokens and decodes back to itself. The
//! files it writes load unchanged in Python `tokenizers` and `transformers`.

use crate::bytelevel::{ByteLevelFast, Encoded};
use std::fs;
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Deserializer, Serialize};
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, TokenizerImpl};

use crate::template::DEFAULT_CHAT_TEMPLATE;

/// End-of-text token; also the end-of-sequence token of trained tokenizers.
pub const EOS_TOKEN: &str = "<|endoftext|>";
/// Opens a ChatML message.
pub const IM_START: &str = "<|im_start|>";
/// Closes a ChatML message.
pub const IM_END: &str = "<|im_end|>";
/// Padding token of trained tokenizers.
pub const PAD_TOKEN: &str = "<|pad|>";
/// File name of the tokenizer proper inside a tokenizer directory.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// File name of the Hugging Face tokenizer configuration beside it.
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";
/// File name of the chat template as transformers 5 saves it; it takes
/// precedence over the other places a template can be.
pub const CHAT_TEMPLATE_FILE: &str = "chat_template.jinja";
/// File name of the chat template as transformers 4.4x saved it
/// (`{"chat_template": "..."}`).
pub const CHAT_TEMPLATE_JSON_FILE: &str = "chat_template.json";
/// A SentencePiece model, which older checkpoints ship instead of
/// [`TOKENIZER_FILE`].
const SENTENCEPIECE_FILE: &str = "tokenizer.model";
/// The files [`Tokenizer::save`] writes, the template only when there is
/// one: what a directory that carries a tokenizer copies and lists.
pub const TOKENIZER_FILES: [&str; 3] = [TOKENIZER_FILE, TOKENIZER_CONFIG_FILE, CHAT_TEMPLATE_FILE];

/// The special tokens of a trained tokenizer; their order fixes their ids
/// (0, 1, 2, 3), which downstream code and golden files rely on.
const SPECIAL_TOKENS: [&str; 4] = [EOS_TOKEN, IM_START, IM_END, PAD_TOKEN];

/// Size of the byte-level alphabet: every byte has a token, so no text is
/// ever unknown.
const BYTE_ALPHABET: usize = 256;

/// Largest vocabulary accepted for training. The trainer preallocates tables
/// of `vocab_size` entries, so an absurd value would exhaust memory instead
/// of failing; real vocabularies stay well below this (≈ 262k at most).
pub const MAX_VOCAB_SIZE: usize = 1 << 20;

/// Errors of loading, training, saving and using a tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The training settings are unusable.
    #[error("invalid tokenizer training settings: {0}")]
    InvalidTrainConfig(#[source] clintune_core::Invalid),
    /// Training failed inside the `tokenizers` library.
    #[error("training the tokenizer failed: {0}")]
    Train(#[source] clintune_core::Cause),
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The directory has only a SentencePiece `tokenizer.model`, which
    /// clintune does not read.
    #[error(
        "{dir}: has tokenizer.model (SentencePiece) but no tokenizer.json; clintune reads \
         tokenizer.json, which transformers writes: python -c \"from transformers import \
         AutoTokenizer; AutoTokenizer.from_pretrained('DIR').save_pretrained('DIR')\""
    )]
    SentencePieceOnly {
        /// The model directory.
        dir: PathBuf,
    },
    /// `tokenizer.json` exists but is not a tokenizer `tokenizers` can load.
    #[error("{path}: not a loadable tokenizer: {source}")]
    Load {
        /// The tokenizer file.
        path: PathBuf,
        /// What `tokenizers` reported.
        source: clintune_core::Cause,
    },
    /// `tokenizer_config.json` is not valid JSON or has fields of the wrong type.
    #[error("{path}: invalid tokenizer config: {source}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// The parse error, with line and column.
        source: serde_json::Error,
    },
    /// The tokenizer or its config could not be serialized.
    #[error("cannot serialize the tokenizer for {path}: {source}")]
    Serialize {
        /// The file that was to be written.
        path: PathBuf,
        /// What went wrong.
        source: clintune_core::Cause,
    },
    /// Encoding failed inside the `tokenizers` library.
    #[error("encoding failed: {0}")]
    Encode(#[source] clintune_core::Cause),
    /// Decoding failed inside the `tokenizers` library.
    #[error("decoding failed: {0}")]
    Decode(#[source] clintune_core::Cause),
    /// An id to decode is not in the vocabulary.
    #[error("token id {id} is not in the vocabulary (size {vocab_size})")]
    UnknownId {
        /// The offending id.
        id: u32,
        /// The vocabulary size, added tokens included.
        vocab_size: usize,
    },
}

/// Settings for training a byte-level BPE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Target vocabulary size, counting the special tokens and the 256-byte
    /// alphabet. Training stops earlier when no pair is frequent enough.
    pub vocab_size: usize,
    /// A pair of tokens must occur at least this often to be merged.
    pub min_frequency: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            vocab_size: 8192,
            min_frequency: 2,
        }
    }
}

impl TrainConfig {
    /// Smallest accepted `vocab_size`: the special tokens, the byte alphabet
    /// and at least one merge.
    pub const MIN_VOCAB_SIZE: usize = SPECIAL_TOKENS.len() + BYTE_ALPHABET + 1;

    /// Checks the settings before any work is done.
    pub fn validate(&self) -> Result<(), clintune_core::Invalid> {
        if !(Self::MIN_VOCAB_SIZE..=MAX_VOCAB_SIZE).contains(&self.vocab_size) {
            return Err(clintune_core::Invalid::new(
                "tokenizer.vocab_size",
                format!(
                    "is {}; it must be between {} ({} special tokens + {} bytes + 1 merge) \
                     and {MAX_VOCAB_SIZE}",
                    self.vocab_size,
                    Self::MIN_VOCAB_SIZE,
                    SPECIAL_TOKENS.len(),
                    BYTE_ALPHABET,
                ),
            ));
        }
        if self.min_frequency == 0 {
            return Err(clintune_core::Invalid::new(
                "tokenizer.min_frequency",
                "is 0; it must be at least 1",
            ));
        }
        Ok(())
    }
}

/// The subset of a Hugging Face `tokenizer_config.json` that clintune reads
/// and writes.
///
/// Reading accepts what HF files contain: a `*_token` entry is a string, an
/// object `{"content": "...", ...}` or null; `chat_template` is a string or a
/// list of `{"name", "template"}` objects, of which the one named `default` is
/// taken. Other keys are ignored, as HF configs carry many.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenizerConfig {
    /// Jinja chat template.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_chat_template"
    )]
    pub chat_template: Option<String>,
    /// Beginning-of-sequence token, if the model uses one.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "de_token")]
    pub bos_token: Option<String>,
    /// End-of-sequence token.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "de_token")]
    pub eos_token: Option<String>,
    /// Padding token.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "de_token")]
    pub pad_token: Option<String>,
}

/// A `*_token` entry as HF writes it: older files hold the string, newer
/// ones the serialized `AddedToken`.
#[derive(Deserialize)]
#[serde(untagged)]
enum TokenEntry {
    Plain(String),
    Added { content: String },
}

/// A `chat_template` entry: one template, or several named ones (HF's form
/// for models with e.g. a separate tool-use template).
#[derive(Deserialize)]
#[serde(untagged)]
enum ChatTemplateEntry {
    Plain(String),
    Named(Vec<NamedTemplate>),
}

#[derive(Deserialize)]
struct NamedTemplate {
    name: String,
    template: String,
}

fn de_token<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<TokenEntry>::deserialize(d)?.map(|t| match t {
        TokenEntry::Plain(s) | TokenEntry::Added { content: s } => s,
    }))
}

fn de_chat_template<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<ChatTemplateEntry>::deserialize(d)? {
        None => Ok(None),
        Some(ChatTemplateEntry::Plain(s)) => Ok(Some(s)),
        // Like transformers: with several templates and none named, only
        // "default" is unambiguous; guessing another would silently format
        // chats wrongly.
        Some(ChatTemplateEntry::Named(list)) => list
            .into_iter()
            .find(|t| t.name == "default")
            .map(|t| Some(t.template))
            .ok_or_else(|| {
                serde::de::Error::custom("chat_template list has no template named \"default\"")
            }),
    }
}

/// A tokenizer together with the HF configuration that accompanies it.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    config: TokenizerConfig,
    /// Where the chat template came from.
    template_source: TemplateSource,
    /// The files it was loaded from, written back unchanged by
    /// [`Tokenizer::save`]: a re-serialised `tokenizer.json` differs in its
    /// bytes (which training compares with the model's) and a config
    /// rewritten from [`TokenizerConfig`] would lose keys transformers reads.
    original: Option<Arc<OriginalFiles>>,
    /// The faster route for byte-level BPE pipelines, when this is one.
    fast: Option<ByteLevelFast>,
    /// Encodings so far, to pick which ones are checked against the crate.
    encoded: Arc<AtomicU64>,
}

/// The bytes of a loaded tokenizer's files.
#[derive(Debug)]
struct OriginalFiles {
    tokenizer: Vec<u8>,
    config: Option<String>,
}

/// Where a tokenizer's chat template was found, in the order transformers
/// looks: the first that exists wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateSource {
    /// [`CHAT_TEMPLATE_FILE`], as transformers 5 saves it.
    JinjaFile,
    /// [`CHAT_TEMPLATE_JSON_FILE`].
    JsonFile,
    /// The `chat_template` entry of [`TOKENIZER_CONFIG_FILE`].
    Config,
    /// None: [`DEFAULT_CHAT_TEMPLATE`] is used.
    Default,
}

impl TemplateSource {
    /// The file name (or `"default ChatML"`), for messages.
    pub fn describe(&self) -> &'static str {
        match self {
            Self::JinjaFile => CHAT_TEMPLATE_FILE,
            Self::JsonFile => CHAT_TEMPLATE_JSON_FILE,
            Self::Config => TOKENIZER_CONFIG_FILE,
            Self::Default => "clintune's default ChatML template",
        }
    }
}

/// One encoding in this many (the first included) is also made the crate's
/// own way and compared, so that a difference between the fast route and
/// `tokenizers` stops a run instead of silently changing a dataset.
const CHECK_EVERY: u64 = 64;

/// The concrete pipeline a trained tokenizer has before it is type-erased
/// into `tokenizers::Tokenizer`; the trainer needs the concrete BPE model.
type ByteLevelBpe = TokenizerImpl<BPE, NormalizerWrapper, ByteLevel, ByteLevel, ByteLevel>;

/// GPT-2's byte-level step. No prefix space, so a text's first word encodes
/// the same as at the start of a chat message; offsets untrimmed, so they
/// cover every byte of the text including spaces.
fn byte_level() -> ByteLevel {
    ByteLevel::new(false, false, true)
}

fn special_tokens() -> Vec<AddedToken> {
    SPECIAL_TOKENS
        .iter()
        .map(|t| AddedToken::from(*t, true))
        .collect()
}

fn untrained_pipeline() -> ByteLevelBpe {
    let mut tk = ByteLevelBpe::new(BPE::default());
    tk.with_pre_tokenizer(Some(byte_level()))
        .with_post_processor(Some(byte_level()))
        .with_decoder(Some(byte_level()));
    tk
}

impl Tokenizer {
    fn new(inner: tokenizers::Tokenizer, config: TokenizerConfig) -> Self {
        let template_source = if config.chat_template.is_some() {
            TemplateSource::Config
        } else {
            TemplateSource::Default
        };
        Self {
            fast: ByteLevelFast::for_tokenizer(&inner),
            inner,
            config,
            template_source,
            original: None,
            encoded: Arc::default(),
        }
    }

    /// Trains a GPT-2 style byte-level BPE on `texts`.
    ///
    /// The special tokens get ids 0..=3 in the order [`EOS_TOKEN`],
    /// [`IM_START`], [`IM_END`], [`PAD_TOKEN`], followed by the 256 byte
    /// tokens and the merges. Special-token strings inside `texts` are
    /// trained on as ordinary text. The same texts and settings give the same
    /// tokenizer: the trainer breaks ties between equally frequent pairs by
    /// token id, not by hash order. The config gets the ChatML template, EOS
    /// and PAD, and no BOS.
    pub fn train<I, S>(texts: I, cfg: &TrainConfig) -> Result<Self, TokenizerError>
    where
        I: Iterator<Item = S> + Send,
        S: AsRef<str> + Send,
    {
        cfg.validate().map_err(TokenizerError::InvalidTrainConfig)?;
        let mut trainer = BpeTrainerBuilder::new()
            .vocab_size(cfg.vocab_size)
            .min_frequency(cfg.min_frequency)
            // A progress bar in a log file is noise.
            .show_progress(io::stderr().is_terminal())
            .special_tokens(special_tokens())
            // All 256 bytes, even unseen ones, so that no input is unknown.
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build();
        let mut pipeline = untrained_pipeline();
        pipeline
            .train(&mut trainer, texts)
            .map_err(TokenizerError::Train)?;
        Ok(Self::new(
            pipeline.into(),
            TokenizerConfig {
                chat_template: Some(DEFAULT_CHAT_TEMPLATE.to_string()),
                bos_token: None,
                eos_token: Some(EOS_TOKEN.to_string()),
                pad_token: Some(PAD_TOKEN.to_string()),
            },
        ))
    }

    /// Loads a tokenizer from a directory holding [`TOKENIZER_FILE`] (and
    /// optionally [`TOKENIZER_CONFIG_FILE`]), or from the path of a
    /// `tokenizer.json` whose config is looked up beside it. Without a config
    /// file the config is empty.
    ///
    /// The chat template is looked up as transformers 5 does: the first of
    /// [`CHAT_TEMPLATE_FILE`], [`CHAT_TEMPLATE_JSON_FILE`] and the config's
    /// `chat_template` entry.
    pub fn load(path: &Path) -> Result<Self, TokenizerError> {
        let (file, dir) = if path.is_dir() {
            (path.join(TOKENIZER_FILE), path.to_path_buf())
        } else {
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            (path.to_path_buf(), dir)
        };
        if !file.exists() && dir.join(SENTENCEPIECE_FILE).is_file() {
            return Err(TokenizerError::SentencePieceOnly { dir });
        }
        let bytes = fs::read(&file).map_err(|source| TokenizerError::Io {
            path: file.clone(),
            source,
        })?;
        let inner =
            tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| TokenizerError::Load {
                path: file.clone(),
                source: e,
            })?;
        let config_path = dir.join(TOKENIZER_CONFIG_FILE);
        let config_text = read_if_present(&config_path)?;
        let mut config = parse_config(&config_path, config_text.as_deref())?;
        let template = read_template_file(&dir)?;
        let source = template.as_ref().map(|(source, _)| source.clone());
        if let Some((_, text)) = template {
            config.chat_template = Some(text);
        }
        let mut tokenizer = Self::new(inner, config);
        if let Some(source) = source {
            tokenizer.template_source = source;
        }
        tokenizer.original = Some(Arc::new(OriginalFiles {
            tokenizer: bytes,
            config: config_text,
        }));
        tokenizer.warn_on_missing_specials(&file);
        Ok(tokenizer)
    }

    /// Writes [`TOKENIZER_FILE`] and [`TOKENIZER_CONFIG_FILE`] into `dir`
    /// (created if missing), each atomically, and returns their paths. A
    /// tokenizer with a chat template also gets [`CHAT_TEMPLATE_FILE`], the
    /// layout transformers 5 writes; the config keeps the template too, for
    /// readers older than transformers 4.43.
    pub fn save(&self, dir: &Path) -> Result<Vec<PathBuf>, TokenizerError> {
        fs::create_dir_all(dir).map_err(|source| TokenizerError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let tokenizer_path = dir.join(TOKENIZER_FILE);
        let config_path = dir.join(TOKENIZER_CONFIG_FILE);
        let original = self.original.as_deref();
        match original {
            Some(files) => write_file(&tokenizer_path, &files.tokenizer)?,
            None => {
                let json = self
                    .inner
                    .to_string(true)
                    .map_err(|e| TokenizerError::Serialize {
                        path: tokenizer_path.clone(),
                        source: e,
                    })?;
                write_file(&tokenizer_path, json.as_bytes())?;
            }
        }
        match original.and_then(|f| f.config.as_deref()) {
            Some(text) => write_file(&config_path, text.as_bytes())?,
            None => {
                let mut config = serde_json::to_vec_pretty(&self.config).map_err(|e| {
                    TokenizerError::Serialize {
                        path: config_path.clone(),
                        source: e.into(),
                    }
                })?;
                config.push(b'\n');
                write_file(&config_path, &config)?;
            }
        }
        let mut written = vec![tokenizer_path, config_path];
        if let Some(template) = &self.config.chat_template {
            let path = dir.join(CHAT_TEMPLATE_FILE);
            write_file(&path, template.as_bytes())?;
            written.push(path);
        }
        Ok(written)
    }

    /// Encodes `text` into ids with the byte range `(start, end)` of `text`
    /// each token comes from.
    ///
    /// No special tokens are added (no BOS/EOS), but special-token strings
    /// inside `text`, such as `<|im_start|>`, become their single token.
    /// Offsets are byte offsets, always on char boundaries: when a
    /// multi-byte character is split over several byte tokens, each of them
    /// spans the whole character.
    // Plain tuples keep callers free of an extra type to import.
    #[allow(clippy::type_complexity)]
    pub fn encode_with_offsets(&self, text: &str) -> Result<Encoded, TokenizerError> {
        let Some(fast) = &self.fast else {
            return self.encode_with_offsets_by_crate(text);
        };
        let ours = fast
            .encode(&self.inner, text)
            .map_err(TokenizerError::Encode)?;
        if self
            .encoded
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(CHECK_EVERY)
            && ours != self.encode_with_offsets_by_crate(text)?
        {
            return Err(TokenizerError::Encode(
                "the fast byte-level route and the tokenizers crate disagree on a text; \
                 this is a clintune bug, please report it"
                    .into(),
            ));
        }
        Ok(ours)
    }

    /// [`Tokenizer::encode_with_offsets`] through the `tokenizers` crate's
    /// own pipeline, whatever the tokenizer.
    pub fn encode_with_offsets_by_crate(&self, text: &str) -> Result<Encoded, TokenizerError> {
        // `encode` (unlike `encode_char_offsets`, which Python uses) reports
        // byte offsets in the Rust crate.
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(TokenizerError::Encode)?;
        Ok((encoding.get_ids().to_vec(), encoding.get_offsets().to_vec()))
    }

    /// Encodes `text` as a document, the way transformers' `tokenizer(text)`
    /// does: with the special tokens the tokenizer's post-processor adds
    /// (Llama 3's and Mistral's prepend BOS; GPT-2's, SmolLM's and Qwen's add
    /// none). transformers 5 follows `tokenizer.json`'s post-processor alone
    /// and ignores `add_bos_token` in the config when that file exists, so
    /// this does too. The added tokens have the empty range `(0, 0)`.
    ///
    /// Chat text rendered by a template is encoded with
    /// [`Tokenizer::encode_with_offsets`] instead: templates write their own
    /// special tokens, and `apply_chat_template` adds none.
    pub fn encode_document(&self, text: &str) -> Result<Encoded, TokenizerError> {
        if self.added_specials() == 0 {
            return self.encode_with_offsets(text);
        }
        let encoding = self
            .inner
            .encode(text, true)
            .map_err(TokenizerError::Encode)?;
        Ok((encoding.get_ids().to_vec(), encoding.get_offsets().to_vec()))
    }

    /// [`Tokenizer::encode_document`] without the offsets.
    pub fn encode_document_ids(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        Ok(self.encode_document(text)?.0)
    }

    /// How many special tokens the post-processor adds to one sequence.
    pub fn added_specials(&self) -> usize {
        self.inner
            .get_post_processor()
            .map_or(0, |p| tokenizers::PostProcessor::added_tokens(p, false))
    }

    /// True when encodings take the faster byte-level route (see
    /// [`crate::bytelevel`]).
    pub fn is_fast(&self) -> bool {
        self.fast.is_some()
    }

    /// Encodes `text` into ids, like [`Tokenizer::encode_with_offsets`]
    /// without the offsets.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let encoding = self
            .inner
            .encode_fast(text, false)
            .map_err(TokenizerError::Encode)?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Decodes `ids` back to text, special tokens included. Bytes that do
    /// not form valid UTF-8 (a character cut at the end of a slice) become
    /// U+FFFD. An id outside the vocabulary is an error rather than being
    /// dropped silently, as `tokenizers` would.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        if let Some(&id) = ids.iter().find(|&&id| self.inner.id_to_token(id).is_none()) {
            return Err(TokenizerError::UnknownId {
                id,
                vocab_size: self.vocab_size(),
            });
        }
        self.inner
            .decode(ids, false)
            .map_err(TokenizerError::Decode)
    }

    /// The id of `token` (a vocabulary entry or an added token), if any.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The end-of-sequence token named by the config.
    pub fn eos_token(&self) -> Option<&str> {
        self.config.eos_token.as_deref()
    }

    /// The id of the end-of-sequence token, if the config names one and the
    /// vocabulary has it.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos_token().and_then(|t| self.token_id(t))
    }

    /// The beginning-of-sequence token named by the config.
    pub fn bos_token(&self) -> Option<&str> {
        self.config.bos_token.as_deref()
    }

    /// The chat template: the config's, or [`DEFAULT_CHAT_TEMPLATE`] when it
    /// has none.
    pub fn chat_template(&self) -> &str {
        self.config
            .chat_template
            .as_deref()
            .unwrap_or(DEFAULT_CHAT_TEMPLATE)
    }

    /// Where [`Tokenizer::chat_template`] came from.
    pub fn template_source(&self) -> &TemplateSource {
        &self.template_source
    }

    /// The HF configuration accompanying the tokenizer.
    pub fn config(&self) -> &TokenizerConfig {
        &self.config
    }

    /// Number of distinct ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// A config naming tokens the vocabulary lacks loads (transformers would
    /// add them), but such tokens would never be produced by encoding, so
    /// say so early.
    fn warn_on_missing_specials(&self, file: &Path) {
        let named = [
            &self.config.bos_token,
            &self.config.eos_token,
            &self.config.pad_token,
        ];
        for token in named.into_iter().flatten() {
            if self.token_id(token).is_none() {
                tracing::warn!(
                    file = %file.display(),
                    token = %token,
                    "tokenizer config names a token that is not in the vocabulary"
                );
            }
        }
    }
}

/// A config's text, or the empty config when there is no file.
fn parse_config(file: &Path, text: Option<&str>) -> Result<TokenizerConfig, TokenizerError> {
    let Some(text) = text else {
        return Ok(TokenizerConfig::default());
    };
    serde_json::from_str(text).map_err(|source| TokenizerError::Config {
        path: file.to_path_buf(),
        source,
    })
}

/// The template of [`CHAT_TEMPLATE_FILE`] or [`CHAT_TEMPLATE_JSON_FILE`] in
/// `dir`, the first that exists.
fn read_template_file(dir: &Path) -> Result<Option<(TemplateSource, String)>, TokenizerError> {
    let jinja = dir.join(CHAT_TEMPLATE_FILE);
    if let Some(text) = read_if_present(&jinja)? {
        return Ok(Some((TemplateSource::JinjaFile, text)));
    }
    let json = dir.join(CHAT_TEMPLATE_JSON_FILE);
    let Some(text) = read_if_present(&json)? else {
        return Ok(None);
    };
    #[derive(Deserialize)]
    struct File {
        #[serde(default, deserialize_with = "de_chat_template")]
        chat_template: Option<String>,
    }
    let file: File = serde_json::from_str(&text).map_err(|source| TokenizerError::Config {
        path: json.clone(),
        source,
    })?;
    Ok(file
        .chat_template
        .map(|template| (TemplateSource::JsonFile, template)))
}

/// The text of `path`, or `None` when there is no such file.
fn read_if_present(path: &Path) -> Result<Option<String>, TokenizerError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TokenizerError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn write_file(path: &Path, data: &[u8]) -> Result<(), TokenizerError> {
    clintune_core::staging::write_atomic(path, data).map_err(|source| TokenizerError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CORPUS: &[&str] = &[
        "Patient admitted with community-acquired pneumonia.",
        "Started ceftriaxone 1 g IV daily and azithromycin 500 mg.",
        "Chest X-ray shows right lower lobe consolidation.",
        "Blood cultures negative at 48 hours.",
        "Discharged home on oral amoxicillin.",
        "Follow up with primary care in one week.",
        "The patient has a history of hypertension and type 2 diabetes.",
        "Metformin 500 mg twice daily was continued.",
        "Lisinopril 10 mg daily was held for acute kidney injury.",
        "Creatinine improved from 2.1 to 1.2 mg/dL.",
        "No chest pain, no shortness of breath at discharge.",
        "Vital signs stable; afebrile for 48 hours.",
        "The patient was counselled on smoking cessation.",
        "Admitted for a fall at home with a left wrist fracture.",
        "The fracture was managed with closed reduction and a splint.",
        "DEXA scan confirmed osteoporosis.",
        "Alendronic acid 70 mg weekly was started.",
        "Follow up with orthopaedics in two weeks.",
        "The patient lives at home with her husband.",
        "Physical therapy evaluated the patient before discharge.",
        "Hemoglobin stable at 11.2 g/dL.",
        "Patient tolerated diet and ambulated independently.",
        "Discharge summary drafted for the attending physician.",
        "Continue simvastatin 20 mg at night.",
    ];

    fn small() -> Tokenizer {
        let cfg = TrainConfig {
            vocab_size: 300,
            min_frequency: 2,
        };
        Tokenizer::train(CORPUS.iter(), &cfg).unwrap()
    }

    #[test]
    fn is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Tokenizer>();
    }

    #[test]
    fn validate_rejects_too_small_vocab_and_zero_frequency() {
        let tiny = TrainConfig {
            vocab_size: 260,
            ..TrainConfig::default()
        };
        let msg = tiny.validate().unwrap_err().to_string();
        assert!(msg.contains("261"), "{msg}");
        let zero = TrainConfig {
            min_frequency: 0,
            ..TrainConfig::default()
        };
        assert!(zero.validate().is_err());
        assert!(TrainConfig::default().validate().is_ok());
    }

    #[test]
    fn train_config_rejects_unknown_fields() {
        let cfg: TrainConfig = serde_json::from_str(r#"{"vocab_size": 512}"#).unwrap();
        assert_eq!(cfg.min_frequency, 2);
        assert!(serde_json::from_str::<TrainConfig>(r#"{"vocab": 512}"#).is_err());
    }

    #[test]
    fn specials_come_first_and_vocab_is_bounded() {
        let tk = small();
        for (i, t) in SPECIAL_TOKENS.iter().enumerate() {
            assert_eq!(tk.token_id(t), Some(i as u32), "{t}");
        }
        assert!(tk.vocab_size() > 260 && tk.vocab_size() <= 300);
        assert_eq!(tk.eos_id(), Some(0));
        assert_eq!(tk.bos_token(), None);
        assert_eq!(tk.chat_template(), DEFAULT_CHAT_TEMPLATE);
    }

    #[test]
    fn round_trips_text() {
        let tk = small();
        for text in [
            "Patient admitted with pneumonia.",
            "  leading spaces\tand\ttabs\n\nnewlines  ",
            "Unseen words: zygote, quixotic, 日本語 🩺",
            "",
        ] {
            let ids = tk.encode(text).unwrap();
            assert_eq!(tk.decode(&ids).unwrap(), text);
        }
        // Merges were learned: a frequent word is shorter than its bytes.
        assert!(tk.encode("patient").unwrap().len() < "patient".len());
    }

    #[test]
    fn specials_inside_text_are_single_tokens() {
        let tk = small();
        let text = "<|im_start|>user\nHello<|im_end|>\n<|endoftext|>";
        let ids = tk.encode(text).unwrap();
        assert_eq!(ids[0], 1);
        assert!(ids.contains(&2));
        assert_eq!(ids.last(), Some(&0));
        assert_eq!(tk.decode(&ids).unwrap(), text);
        // No EOS is appended to plain text either.
        assert!(!tk.encode("Hello").unwrap().contains(&0));
    }

    #[test]
    fn offsets_are_bytes_on_char_boundaries() {
        let tk = small();
        let text = "5 µg é→x";
        let (ids, offsets) = tk.encode_with_offsets(text).unwrap();
        assert_eq!(ids, tk.encode(text).unwrap());
        assert_eq!(ids.len(), offsets.len());
        assert_eq!(offsets.last().map(|o| o.1), Some(text.len()));
        for &(start, end) in &offsets {
            assert!(start < end && end <= text.len());
            assert!(text.is_char_boundary(start) && text.is_char_boundary(end));
        }
        // "g" sits after the two bytes of "µ": bytes 4..5, chars 3..4.
        let g = offsets
            .iter()
            .position(|&(s, e)| &text[s..e] == "g")
            .unwrap();
        assert_eq!(offsets[g], (4, 5));
        assert!(offsets.contains(&(6, 8)), "é spans bytes 6..8: {offsets:?}");
        // Specials get their own span.
        let (_, offsets) = tk.encode_with_offsets("é<|im_end|>").unwrap();
        assert_eq!(offsets.last(), Some(&(2, 12)));
    }

    #[test]
    fn save_then_load_encodes_identically() {
        let tk = small();
        let dir = tempfile::tempdir().unwrap();
        let written = tk.save(dir.path()).unwrap();
        assert_eq!(
            written,
            vec![
                dir.path().join(TOKENIZER_FILE),
                dir.path().join(TOKENIZER_CONFIG_FILE),
                dir.path().join(CHAT_TEMPLATE_FILE),
            ]
        );
        let jinja = fs::read_to_string(dir.path().join(CHAT_TEMPLATE_FILE)).unwrap();
        assert_eq!(jinja, DEFAULT_CHAT_TEMPLATE);
        let text = "<|im_start|>assistant\nMetformin 500 mg µg é 🩺<|im_end|>\n";
        for loaded in [
            Tokenizer::load(dir.path()).unwrap(),
            Tokenizer::load(&dir.path().join(TOKENIZER_FILE)).unwrap(),
        ] {
            assert_eq!(loaded.config(), tk.config());
            assert_eq!(
                loaded.encode_with_offsets(text).unwrap(),
                tk.encode_with_offsets(text).unwrap()
            );
            assert_eq!(loaded.vocab_size(), tk.vocab_size());
        }
    }

    #[test]
    fn reads_hf_configs_with_token_objects_and_template_lists() {
        let json = r#"{
            "add_bos_token": false,
            "bos_token": {"content": "<s>", "lstrip": false, "normalized": false,
                          "rstrip": false, "single_word": false, "__type": "AddedToken"},
            "eos_token": "<|endoftext|>",
            "pad_token": null,
            "chat_template": [
                {"name": "tool_use", "template": "T"},
                {"name": "default", "template": "D"}
            ],
            "model_max_length": 2048
        }"#;
        let cfg: TokenizerConfig = serde_json::from_str(json).unwrap();
        assert_eq!(cfg.bos_token.as_deref(), Some("<s>"));
        assert_eq!(cfg.eos_token.as_deref(), Some(EOS_TOKEN));
        assert_eq!(cfg.pad_token, None);
        assert_eq!(cfg.chat_template.as_deref(), Some("D"));

        let no_default = r#"{"chat_template": [{"name": "tool_use", "template": "T"}]}"#;
        assert!(serde_json::from_str::<TokenizerConfig>(no_default).is_err());
    }

    #[test]
    fn loads_object_tokens_from_a_config_file() {
        let tk = small();
        let dir = tempfile::tempdir().unwrap();
        tk.save(dir.path()).unwrap();
        let config = r#"{"eos_token": {"content": "<|im_end|>", "special": true}}"#;
        fs::write(dir.path().join(TOKENIZER_CONFIG_FILE), config).unwrap();
        let loaded = Tokenizer::load(dir.path()).unwrap();
        assert_eq!(loaded.eos_token(), Some(IM_END));
        assert_eq!(loaded.eos_id(), Some(2));
        assert_eq!(loaded.chat_template(), DEFAULT_CHAT_TEMPLATE);
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = Tokenizer::load(dir.path()).unwrap_err();
        let expected = dir.path().join(TOKENIZER_FILE);
        assert!(matches!(&err, TokenizerError::Io { path, .. } if *path == expected));
        assert!(err.to_string().contains(&expected.display().to_string()));

        small().save(dir.path()).unwrap();
        let config = dir.path().join(TOKENIZER_CONFIG_FILE);
        fs::write(&config, "{not json").unwrap();
        let err = Tokenizer::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&config.display().to_string()), "{err}");

        fs::write(dir.path().join(TOKENIZER_FILE), "{}").unwrap();
        let err = Tokenizer::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains(TOKENIZER_FILE), "{err}");

        let sentencepiece = tempfile::tempdir().unwrap();
        fs::write(sentencepiece.path().join(SENTENCEPIECE_FILE), b"\x0a").unwrap();
        let err = Tokenizer::load(sentencepiece.path()).unwrap_err();
        assert!(
            matches!(err, TokenizerError::SentencePieceOnly { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("save_pretrained"), "{err}");
    }

    #[test]
    fn the_template_is_found_where_transformers_looks_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut tk = small();
        tk.config.chat_template = Some("CONFIG".into());
        tk.save(dir.path()).unwrap();
        fs::remove_file(dir.path().join(CHAT_TEMPLATE_FILE)).unwrap();
        let load = || Tokenizer::load(dir.path()).unwrap();
        assert_eq!(load().chat_template(), "CONFIG");
        assert_eq!(load().template_source(), &TemplateSource::Config);

        let json = dir.path().join(CHAT_TEMPLATE_JSON_FILE);
        fs::write(&json, r#"{"chat_template": "JSON"}"#).unwrap();
        assert_eq!(load().chat_template(), "JSON");
        assert_eq!(load().template_source(), &TemplateSource::JsonFile);

        fs::write(dir.path().join(CHAT_TEMPLATE_FILE), "JINJA").unwrap();
        assert_eq!(load().chat_template(), "JINJA");
        assert_eq!(load().template_source(), &TemplateSource::JinjaFile);

        fs::remove_file(dir.path().join(CHAT_TEMPLATE_FILE)).unwrap();
        fs::write(&json, "{oops").unwrap();
        let err = Tokenizer::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains(CHAT_TEMPLATE_JSON_FILE), "{err}");
    }

    #[test]
    fn documents_get_what_the_post_processor_adds() {
        let tk = small();
        // A GPT-2 style post-processor adds nothing.
        assert_eq!(tk.added_specials(), 0);
        assert_eq!(
            tk.encode_document("Metformin 500 mg").unwrap(),
            tk.encode_with_offsets("Metformin 500 mg").unwrap()
        );
        // One that prepends BOS, as Llama 3's does.
        let mut json: serde_json::Value =
            serde_json::from_str(&tk.inner.to_string(false).unwrap()).unwrap();
        json["post_processor"] = serde_json::json!({
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [0], "tokens": ["<|endoftext|>"]}}
        });
        let inner = tokenizers::Tokenizer::from_bytes(json.to_string().as_bytes()).unwrap();
        let bos = Tokenizer::new(inner, tk.config.clone());
        assert_eq!(bos.added_specials(), 1);
        let (ids, offsets) = bos.encode_document("Metformin").unwrap();
        let plain = bos.encode("Metformin").unwrap();
        assert_eq!(ids[0], 0);
        assert_eq!(ids[1..], plain[..]);
        assert_eq!(offsets[0], (0, 0));
        assert_eq!(offsets.last().map(|o| o.1), Some("Metformin".len()));
    }

    #[test]
    fn a_loaded_tokenizer_is_saved_byte_for_byte() {
        let (from, to) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let compact = small().inner.to_string(false).unwrap();
        fs::write(from.path().join(TOKENIZER_FILE), &compact).unwrap();
        let config = r#"{"tokenizer_class": "GPT2Tokenizer", "eos_token": "<|endoftext|>"}"#;
        fs::write(from.path().join(TOKENIZER_CONFIG_FILE), config).unwrap();
        fs::write(from.path().join(CHAT_TEMPLATE_FILE), "T").unwrap();
        Tokenizer::load(from.path())
            .unwrap()
            .save(to.path())
            .unwrap();
        let read = |name: &str| fs::read_to_string(to.path().join(name)).unwrap();
        assert_eq!(read(TOKENIZER_FILE), compact);
        assert_eq!(read(TOKENIZER_CONFIG_FILE), config);
        assert_eq!(read(CHAT_TEMPLATE_FILE), "T");
    }

    #[test]
    fn decode_rejects_unknown_ids() {
        let tk = small();
        let err = tk.decode(&[0, 99_999]).unwrap_err();
        assert!(matches!(err, TokenizerError::UnknownId { id: 99_999, .. }));
    }
}
