//! Features, the burn model for the four layer cases, training, calibration, inference,
//! active questions and (de)serialising weights. The only module that names burn.

mod active;
mod device;
mod explain;
mod features;
mod model;
mod votes;

pub use active::rank_questions;
pub use device::{Compute, ComputeKind};
pub use explain::{Basis, Evidence, Examples};
pub use features::FEATURE_SCHEMA;
pub use model::{
    Metrics, Prediction, Progress, StopFlag, TrainConfig, TrainedModel, class_sets, set_f1, train,
};

/// Why training or loading a model failed.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    #[error("There are no labelled tracks to learn from yet.")]
    NoLabels,
    #[error("The labels do not fit the layer: {0}.")]
    BadLabel(String),
    #[error(
        "The stored model was made with feature schema {stored}; this version uses {current}. Train it again."
    )]
    SchemaMismatch { stored: u32, current: u32 },
    #[error("The stored model is damaged: {0}.")]
    Corrupt(String),
    #[error("No usable GPU was found ({0}); set learn.device to \"auto\" or \"cpu\".")]
    NoGpu(String),
    #[error(
        "learn.device = \"wgpu-software\" found no software wgpu adapter ({0}); install a Vulkan driver such as Mesa's lavapipe, or set learn.device to \"auto\" or \"cpu\"."
    )]
    NoSoftwareAdapter(String),
    #[error("Training was stopped before it finished.")]
    Stopped,
}
