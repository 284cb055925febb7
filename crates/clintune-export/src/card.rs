//! The model card (`README.md`) of an export, generated from the manifests
//! of the run and of everything it came from.

use clintune_lineage::Manifest;
use clintune_train::Recipe;
use clintune_train::recipe::{Method, ObjectiveKind};
use serde_json::Value;
use std::fmt::Write;
use std::path::Path;

/// The manifests from the run down to the source records, as far as they
/// are still on disk.
#[derive(Debug, Clone)]
pub struct Chain {
    /// Run first, then its ancestors.
    pub manifests: Vec<Manifest>,
}

impl Chain {
    /// Follows the first parent of each manifest, starting at the run.
    pub fn read(run_dir: &Path, run: &Manifest) -> Self {
        let mut manifests = vec![run.clone()];
        let mut dir = run_dir.to_path_buf();
        while let Some(parent) = manifests.last().and_then(|m| m.parents.first()).cloned() {
            dir = parent.dir_from(&dir);
            match Manifest::read(&dir) {
                Ok(m) if manifests.len() < 16 => manifests.push(m),
                _ => break,
            }
        }
        Self { manifests }
    }

    fn stage(&self, stage: &str) -> Option<&Manifest> {
        self.manifests.iter().find(|m| m.stage == stage)
    }
}

fn count(m: Option<&Manifest>, key: &str) -> String {
    match m.and_then(|m| m.counts.get(key)) {
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f.fract() != 0.0 => format!("{f:.4}"),
            _ => n.to_string(),
        },
        Some(v) => v.to_string(),
        None => "n/a".into(),
    }
}

/// What the run learnt from, in words.
fn objective(recipe: &Recipe, data: Option<&Manifest>) -> String {
    let o = &recipe.objective;
    match o.kind {
        ObjectiveKind::Sft => {
            "supervised fine-tuning (next-token likelihood of the trained tokens)".into()
        }
        ObjectiveKind::Grpo => {
            let g = &recipe.grpo;
            let graders: Vec<String> = recipe
                .grader
                .iter()
                .map(|s| format!("{} × {}", s.weight, s.kind.name()))
                .collect();
            let clip = match g.epsilon_high {
                Some(high) if high != g.epsilon => format!("{}–{high}", g.epsilon),
                _ => g.epsilon.to_string(),
            };
            format!(
                "GRPO ({} loss, {} completions per prompt, temperature {}, epsilon {clip}, beta {}) rewarded by {}",
                g.loss_type.name(),
                g.num_generations,
                g.temperature,
                g.beta,
                graders.join(" + ")
            )
        }
        ObjectiveKind::Dpo => {
            let reference = match recipe.method.kind {
                Method::Lora => "the base model (the adapter switched off)",
                Method::Full => "the base model, frozen",
            };
            let pairs = |split: &str| {
                data.and_then(|m| m.counts.get("examples"))
                    .and_then(|e| e.get(split))
                    .and_then(|e| e.get("preference"))
                    .map_or("n/a".to_string(), Value::to_string)
            };
            format!(
                "DPO ({} loss, beta {}, label smoothing {}) against {reference}, on {} training and {} validation preference pairs",
                o.loss.as_str(),
                o.beta,
                o.label_smoothing,
                pairs("train"),
                pairs("validation")
            )
        }
    }
}

/// Renders the card of version `version` of `name`.
pub fn render(name: &str, version: u32, recipe: &Recipe, chain: &Chain, adapter: bool) -> String {
    let mut s = String::new();
    let run = chain.stage("train");
    let data = chain.stage("curate");
    let deid = chain.stage("deid");
    let _ = writeln!(s, "# {name} v{version}\n");
    let _ = writeln!(
        s,
        "A Llama-family causal language model fine-tuned by clintune on de-identified clinical records. \
         This card was generated from the lineage manifests; `clintune lineage show` on this directory \
         prints the whole chain and `clintune lineage verify` rechecks every hash.\n"
    );
    let _ = writeln!(s, "## Model\n");
    let _ = writeln!(s, "- Base model: `{}`", recipe.model.base.display());
    let method = match recipe.method.kind {
        Method::Full => "full fine-tuning".to_string(),
        Method::Lora => format!(
            "LoRA (rank {}, alpha {}, dropout {}, on {}), merged into the weights here; the adapter alone is in `adapter/` (PEFT format)",
            recipe.lora.rank,
            recipe.lora.alpha,
            recipe.lora.dropout,
            recipe
                .lora
                .targets
                .iter()
                .map(|t| t.module_name())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let _ = writeln!(s, "- Method: {method}");
    if !adapter && recipe.method.kind == Method::Lora {
        let _ = writeln!(s, "- (adapter not written)");
    }
    let _ = writeln!(s, "- Objective: {}", objective(recipe, data));
    let _ = writeln!(s, "\n## Training\n");
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(
        s,
        "| run manifest | `{}` |",
        run.map_or("n/a", |m| m.id.as_str())
    );
    let _ = writeln!(
        s,
        "| recipe hash | `{}` |",
        run.map_or("n/a", |m| m.config_hash.as_str())
    );
    let _ = writeln!(s, "| steps | {} |", count(run, "steps"));
    let _ = writeln!(s, "| trained tokens | {} |", count(run, "tokens"));
    let _ = writeln!(s, "| peak learning rate | {} |", recipe.optimizer.lr);
    let rows = match recipe.objective.kind {
        ObjectiveKind::Sft => format!("{} rows", recipe.data.micro_batch),
        ObjectiveKind::Dpo => format!("{} pairs (2 rows each)", recipe.data.micro_batch),
        ObjectiveKind::Grpo => format!(
            "{} prompts × {} completions",
            recipe.data.micro_batch, recipe.grpo.num_generations
        ),
    };
    let _ = writeln!(
        s,
        "| batch | {rows} × {} tokens × {} accumulation |",
        recipe.data.seq_len, recipe.data.grad_accum
    );
    let _ = writeln!(s, "| seed | {} |", recipe.train.seed);
    let _ = writeln!(s, "\n## Evaluation (validation split)\n");
    let figures: &[&str] = match recipe.objective.kind {
        ObjectiveKind::Sft => &["loss", "perplexity", "accuracy"],
        ObjectiveKind::Dpo => &[
            "loss",
            "rewards/accuracies",
            "rewards/margins",
            "rewards/chosen",
            "rewards/rejected",
        ],
        ObjectiveKind::Grpo => &["reward"],
    };
    let _ = writeln!(s, "| {} |", figures.join(" | "));
    let _ = writeln!(s, "|{}", "---|".repeat(figures.len()));
    let values: Vec<String> = figures
        .iter()
        .map(|f| count(run, &format!("eval_{f}")))
        .collect();
    let _ = writeln!(s, "| {} |", values.join(" | "));
    let _ = writeln!(s, "\n## Data\n");
    let _ = writeln!(
        s,
        "- Dataset manifest: `{}`",
        data.map_or("n/a", |m| m.id.as_str())
    );
    let _ = writeln!(s, "- Examples: {}", count(data, "examples"));
    let _ = writeln!(
        s,
        "- De-identification manifest: `{}`",
        deid.map_or("n/a", |m| m.id.as_str())
    );
    let policy = deid
        .and_then(|m| m.config.get("policy"))
        .map_or("n/a".to_string(), |v| {
            v.as_str().unwrap_or("n/a").to_string()
        });
    let _ = writeln!(
        s,
        "- De-identification policy: {policy} (HIPAA Safe Harbor)"
    );
    let _ = writeln!(s, "- Patients de-identified: {}", count(deid, "patients"));
    let _ = writeln!(s, "\n## Intended use\n");
    let _ = writeln!(
        s,
        "Research and development inside the institution that trained it: drafting and summarising \
         clinical text for review by qualified staff. Not a medical device; not for unsupervised \
         clinical decisions."
    );
    let _ = writeln!(s, "\n## Limitations\n");
    let _ = writeln!(
        s,
        "- Trained on de-identified records of one institution; it reflects their population, \
         coding habits and documentation style.\n\
         - De-identification removes the Safe Harbor identifiers it detects; free-text detection is \
         not perfect, so treat the weights as derived from sensitive data (run `clintune scan` when \
         available) and share them only under the institution's data-use rules.\n\
         - Generated text can be fluent and wrong; every output needs review."
    );
    let _ = writeln!(s, "\n## Loading\n");
    let _ = writeln!(
        s,
        "```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\nmodel = AutoModelForCausalLM.from_pretrained(\"{name}/v{version}\")\ntokenizer = AutoTokenizer.from_pretrained(\"{name}/v{version}\")\n```"
    );
    s
}
