//! A run's weights (the full model, or frozen base weights and a LoRA
//! adapter) and its checkpoints: written with the optimizer state and the
//! loss log, found again by `--resume`.

use super::report::{LogEntry, write_log};
use super::scaling::LossScaler;
use crate::io::checkpoint;
use crate::nn::config::ModelConfig;
use crate::nn::lora::{self, LoraConfig};
use crate::nn::model::{Adapter, Model};
use crate::nn::optim::AdamW;
use anyhow::Result;
use candle_core::{DType, Device};
use candle_nn::VarMap;
use std::path::{Path, PathBuf};

pub(crate) fn latest_checkpoint(out: &Path) -> Option<(usize, PathBuf)> {
    std::fs::read_dir(out)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let step = name.strip_prefix("checkpoint-")?.parse::<usize>().ok()?;
            e.path()
                .join("trainer_state.json")
                .exists()
                .then(|| (step, e.path()))
        })
        .max_by_key(|(s, _)| *s)
}

pub(crate) fn save_checkpoint(
    dir: &Path,
    cfg: &ModelConfig,
    weights: &Weights,
    model_dir: &Path,
    opt: &AdamW,
    log: &[LogEntry],
    scaler: Option<&LossScaler>,
) -> Result<()> {
    // f32 whatever the final model's precision: --resume continues exactly.
    weights.save(dir, cfg, model_dir, false, DType::F32)?;
    opt.save(&dir.join("optimizer.safetensors"))?;
    write_log(dir, log)?;
    // Written last: a checkpoint without it is incomplete and not resumed from.
    std::fs::write(
        dir.join("trainer_state.json"),
        serde_json::to_vec_pretty(&trainer_state(opt.step, scaler))?,
    )?;
    Ok(())
}

/// What `trainer_state.json` holds: the step, and f16's loss scaler.
fn trainer_state(step: usize, scaler: Option<&LossScaler>) -> serde_json::Value {
    serde_json::json!({ "step": step, "loss_scaler": scaler })
}

/// The loss scaler saved with a checkpoint (f16 runs), if any.
pub(crate) fn saved_scaler(dir: &Path) -> Option<LossScaler> {
    let text = std::fs::read_to_string(dir.join("trainer_state.json")).ok()?;
    let state: serde_json::Value = serde_json::from_str(&text).ok()?;
    serde_json::from_value(state.get("loss_scaler")?.clone()).ok()
}

/// The parameters of a run: the full model, or frozen base weights and an adapter.
pub(crate) enum Weights {
    Full(VarMap),
    Lora {
        base: VarMap,
        config: LoraConfig,
        adapter: VarMap,
    },
}

impl Weights {
    /// Full fine-tuning resumes from the checkpoint's weights; LoRA from the
    /// base model plus the checkpoint's adapter.
    pub(crate) fn load(
        model_dir: &Path,
        cfg: &ModelConfig,
        lora: Option<&LoraConfig>,
        seed: u64,
        resume: Option<&Path>,
        device: &Device,
    ) -> Result<Weights> {
        match lora {
            None => {
                let dir = resume.unwrap_or(model_dir);
                Ok(Weights::Full(checkpoint::load_params(
                    dir,
                    cfg,
                    DType::F32,
                    device,
                )?))
            }
            Some(config) => {
                let base = checkpoint::load_params(model_dir, cfg, DType::F32, device)?;
                let adapter = match resume {
                    Some(dir) => lora::load_adapter(&dir.join("adapter"), cfg, device)?.1,
                    None => lora::init(cfg, config, seed, device)?,
                };
                Ok(Weights::Lora {
                    base,
                    config: config.clone(),
                    adapter,
                })
            }
        }
    }

    /// The model over these weights, computing in `compute` (see
    /// [`Model::for_training`]), recomputing its layers' activations in the
    /// backward pass if `recompute`.
    pub(crate) fn model(
        &self,
        cfg: &ModelConfig,
        compute: DType,
        recompute: bool,
    ) -> Result<Model> {
        let model = match self {
            Weights::Full(params) => Model::for_training(cfg, params, None, compute)?,
            Weights::Lora {
                base,
                config,
                adapter,
            } => Model::for_training(
                cfg,
                base,
                Some(Adapter {
                    config,
                    params: adapter,
                }),
                compute,
            )?,
        };
        Ok(model.with_recomputation(recompute))
    }

    /// The variables the optimizer updates.
    pub(crate) fn trainable(&self) -> Vec<(String, candle_core::Var)> {
        crate::nn::params::named_vars(match self {
            Weights::Full(params) => params,
            Weights::Lora { adapter, .. } => adapter,
        })
    }

    /// Save into `dir`: the full model in `dtype`; for LoRA the adapter (f32)
    /// in `dir/adapter` and, when `merged`, the merged full model too.
    pub(crate) fn save(
        &self,
        dir: &Path,
        cfg: &ModelConfig,
        model_dir: &Path,
        merged: bool,
        dtype: DType,
    ) -> Result<()> {
        match self {
            Weights::Full(params) => checkpoint::save(dir, cfg, params, model_dir, dtype),
            Weights::Lora {
                base,
                config,
                adapter,
            } => {
                lora::save_adapter(&dir.join("adapter"), config, adapter, model_dir)?;
                if merged {
                    checkpoint::save(
                        dir,
                        cfg,
                        &lora::merge(base, cfg, config, adapter)?,
                        model_dir,
                        dtype,
                    )?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loss_scaler_is_saved_with_the_step_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let write = |scaler: Option<&LossScaler>| {
            let state = serde_json::to_vec(&trainer_state(7, scaler)).unwrap();
            std::fs::write(dir.path().join("trainer_state.json"), state).unwrap();
        };
        let scaler = LossScaler {
            scale: 1024.0,
            good_steps: 3,
        };
        write(Some(&scaler));
        assert_eq!(saved_scaler(dir.path()), Some(scaler));
        write(None);
        assert_eq!(saved_scaler(dir.path()), None);
    }
}
