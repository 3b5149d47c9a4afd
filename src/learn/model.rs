//! The burn model of one (member, layer): a sparse linear layer over hashed tokens plus learned
//! trust in the neighbour votes, a softmax over the sublists (and the void in incomplete
//! layers), trained with class weights and early stopping on out-of-fold labels, then
//! calibrated by temperature, with the multi-label threshold chosen on the same labels.

use burn::module::{Module, Param};
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Bytes, Device, Int, Tensor, TensorData, activation};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::LearnError;
use super::device::{CPU_NAME, Compute};
use super::features::{FEATURE_SCHEMA, KNN_DIMS, TokenMap, encode, encode_all};
use super::votes::{Reference, SOURCES};
use crate::domain::{Label, LayerKind, LikedTrack, SublistId};

/// Tunable training settings. The defaults are the ones measured best on `sublist eval`.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Most epochs (full-batch steps) per training run.
    pub max_epochs: usize,
    /// Held-out checks happen every this many epochs.
    pub check_every: usize,
    pub learning_rate: f64,
    /// L2 penalty on token weights, divided by the number of labelled tracks.
    pub l2: f32,
    /// Initial trust in the album, artist and neighbour votes.
    pub trust: [f32; SOURCES],
    /// Width of the hidden layer over the numbers (0: none).
    pub hidden: usize,
    /// L2 penalty on the hidden layer's weights, divided by the number of labelled tracks.
    pub dense_l2: f32,
    /// Cross-validation folds for early stopping and calibration (0: none).
    pub folds: usize,
    /// From this many labels on, early stopping and calibration use one held-out fifth and
    /// keep the model trained on the rest, instead of cross-validating and refitting.
    pub holdout_from: usize,
    /// The most distinct tokens a model keeps (the most frequent ones).
    pub max_vocab: usize,
    pub seed: u64,
    /// Asks a running training to stop between epochs (a cancelled or timed-out job).
    pub stop: StopFlag,
}

/// A flag another thread raises to stop a training between epochs. Settings compare equal
/// whatever its state.
#[derive(Clone, Debug, Default)]
pub struct StopFlag(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl StopFlag {
    pub fn raise(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn is_raised(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl PartialEq for StopFlag {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            max_epochs: 120,
            check_every: 10,
            learning_rate: 0.05,
            l2: 0.2,
            trust: [3.0, 2.0, 1.5, 1.0],
            hidden: 0,
            dense_l2: 0.5,
            folds: 4,
            holdout_from: 1000,
            max_vocab: 40_000,
            seed: 7,
            stop: StopFlag::default(),
        }
    }
}

/// Where training is, for progress bars and Discord replies.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// Epochs done so far, over every run of this training (folds, then the final fit).
    pub epoch: usize,
    /// The most epochs this training can take.
    pub epochs: usize,
    pub loss: f32,
    /// Accuracy on held-out labels, when known.
    pub held_out_accuracy: Option<f32>,
}

/// How well a model did on labels it did not see, and how it was made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Labelled tracks it learned from.
    pub labels: usize,
    /// Out-of-fold accuracy of the top choice (void included), when there were enough labels.
    pub held_out_accuracy: Option<f32>,
    /// Out-of-fold samples-F1 of the full decision.
    pub held_out_f1: Option<f32>,
    /// Epochs of the final fit, chosen by early stopping.
    pub epochs: usize,
    pub temperature: f32,
    /// Extra-sublist threshold of non-mutual layers.
    pub threshold: Option<f32>,
    /// The device it trained on (empty for models saved before this was recorded).
    #[serde(default)]
    pub device: String,
}

/// One track's predicted place in a layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// The decision; always obeys the layer's rules.
    pub label: Label,
    /// Calibrated chance that the decision is right. In a mutual layer, the probability of
    /// the top choice (a sublist, or the void); in a non-mutual layer, how often this model's
    /// decisions were exactly right, out of fold, where its top probability was this high.
    pub confidence: f32,
    /// Calibrated probability of each sublist, in the model's class order.
    pub probabilities: Vec<(SublistId, f32)>,
    /// Calibrated probability of the void (incomplete layers).
    pub void_probability: Option<f32>,
}

#[derive(Module, Debug)]
pub(crate) struct Net {
    /// One row of class scores per token; row 0 is padding.
    tokens: Param<Tensor<2>>,
    bias: Param<Tensor<1>>,
    /// How much each vote source counts.
    trust: Param<Tensor<1>>,
    /// A small network over the scaled numbers and their missing flags.
    hidden: Option<Linear>,
    out: Option<Linear>,
}

/// Width of the dense input: the scaled numbers, then one missing flag per number.
const DENSE: usize = 2 * KNN_DIMS;

impl Net {
    fn new(
        vocab: usize,
        classes: usize,
        trust: [f32; SOURCES],
        hidden: usize,
        device: &Device,
    ) -> Net {
        let (h, o) = if hidden > 0 {
            (
                Some(LinearConfig::new(DENSE, hidden).init(device)),
                Some(
                    LinearConfig::new(hidden, classes)
                        .with_initializer(Initializer::Zeros)
                        .init(device),
                ),
            )
        } else {
            (None, None)
        };
        Net {
            hidden: h,
            out: o,
            tokens: Param::from_tensor(Tensor::zeros([vocab, classes], device)),
            bias: Param::from_tensor(Tensor::zeros([classes], device)),
            trust: Param::from_tensor(Tensor::from_data(
                TensorData::new(trust.to_vec(), [SOURCES]),
                device,
            )),
        }
    }

    /// Logits `[rows, classes]` of one block's input.
    fn forward(&self, x: &Input) -> Tensor<2> {
        let [v, c] = self.tokens.dims();
        let hidden = match (&self.hidden, &self.out) {
            (Some(h), Some(o)) => {
                let width = h.weight.dims()[1];
                let bias = |l: &Linear, n: usize| match &l.bias {
                    Some(b) => b.val().reshape([1, n]),
                    None => Tensor::zeros([1, n], &l.weight.device()),
                };
                Some(Hidden {
                    hidden_w: h.weight.val().reshape([1, DENSE, width]),
                    hidden_b: bias(h, width),
                    out_w: o.weight.val().reshape([1, width, c]),
                    out_b: bias(o, c),
                })
            }
            _ => None,
        };
        let weights = Weights {
            tokens: self.tokens.val().reshape([1, v, c]),
            bias: self.bias.val().reshape([1, c]),
            trust: self.trust.val().reshape([1, SOURCES]),
            hidden,
        };
        weights.forward(x).reshape([x.m, c])
    }
}

/// The weights of one or more blocks (entry `b` of each is block `b`), as the forward pass
/// reads them.
struct Weights {
    /// `[blocks, vocabulary + 1, classes]`
    tokens: Tensor<3>,
    /// `[blocks, classes]`
    bias: Tensor<2>,
    /// `[blocks, SOURCES]`
    trust: Tensor<2>,
    hidden: Option<Hidden>,
}

/// The hidden network's weights, one per block.
struct Hidden {
    /// `[blocks, DENSE, hidden]`
    hidden_w: Tensor<3>,
    /// `[blocks, hidden]`
    hidden_b: Tensor<2>,
    /// `[blocks, hidden, classes]`
    out_w: Tensor<3>,
    /// `[blocks, classes]`
    out_b: Tensor<2>,
}

impl Weights {
    /// Logits `[blocks, rows, classes]`: each block's weights on its own rows.
    fn forward(self, x: &Input) -> Tensor<3> {
        let [b, v, c] = self.tokens.dims();
        let m = x.m;
        let mut logits = match &x.tokens {
            TokenInput::Split {
                t,
                idx,
                val,
                common,
            } => {
                let rare = self
                    .tokens
                    .clone()
                    .reshape([b * v, c])
                    .select(0, idx.clone())
                    .reshape([b * m, *t, c])
                    .mul(val.clone())
                    .sum_dim(1)
                    .reshape([b, m, c]);
                match common {
                    Some(common) => {
                        let d = common.dims()[2];
                        rare + common
                            .clone()
                            .matmul(self.tokens.slice([0..b, 1..d + 1, 0..c]))
                    }
                    None => rare,
                }
            }
            TokenInput::Summed(summed) => summed.clone(),
        };
        let trust = self.trust.reshape([b, 1, SOURCES, 1]);
        let votes = (x.votes.clone() * trust).sum_dim(2).reshape([b, m, c]);
        logits = logits + votes + self.bias.reshape([b, 1, c]);
        if let Some(h) = self.hidden {
            let width = h.hidden_b.dims()[1];
            let hidden = activation::relu(
                x.dense.clone().matmul(h.hidden_w) + h.hidden_b.reshape([b, 1, width]),
            );
            logits = logits + hidden.matmul(h.out_w) + h.out_b.reshape([b, 1, c]);
        }
        logits
    }
}

/// Model input: the rows of one or more blocks, each block padded to the same number of rows
/// (padding rows have no tokens, votes or numbers, and weigh nothing in training).
struct Input {
    /// Rows per block.
    m: usize,
    tokens: TokenInput,
    /// `[blocks, m, SOURCES, classes]`
    votes: Tensor<4>,
    /// `[blocks, m, DENSE]`
    dense: Tensor<3>,
}

/// The token part of the input. One value per forward pass, so its size does not matter.
#[allow(clippy::large_enum_variant)]
enum TokenInput {
    /// The tokens themselves, for training: the common tokens `1..=d` as dense columns, the
    /// rarer ones as padded lists.
    Split {
        /// Rarer tokens per row, padded.
        t: usize,
        /// Rarer tokens: indices into the blocks' token tables laid end to end,
        /// `[blocks * m * t]` (index 0 of each table is the zero padding row).
        idx: Tensor<1, Int>,
        /// Their values, `[blocks * m, t, 1]`.
        val: Tensor<3>,
        /// `[blocks, m, d]` (none when `d` is 0).
        common: Option<Tensor<3>>,
    },
    /// Each row's tokens already weighed by the token table, `[1, m, classes]`, for scoring:
    /// a sparse sum of about a hundred rows of a small table, which plain loops do several
    /// times faster than a gather or a dense product.
    Summed(Tensor<3>),
}

/// Token rows split into dense columns for tokens `1..=d` (`[rows, d]`) and padded lists of
/// the others (`[rows, t]` indices and values; index 0 is the zero padding row). A missing
/// row (`None`) is padding.
struct SplitRows {
    t: usize,
    common: Vec<f32>,
    idx: Vec<i32>,
    val: Vec<f32>,
}

fn split_rows<'a>(
    rows: impl Iterator<Item = Option<&'a [(u32, f32)]>> + Clone,
    d: usize,
) -> SplitRows {
    let t = rows
        .clone()
        .map(|r| r.map_or(0, |r| r.iter().filter(|(k, _)| *k as usize > d).count()))
        .max()
        .unwrap_or(0)
        .max(1);
    let count = rows.clone().count();
    let mut out = SplitRows {
        t,
        common: vec![0.0; count * d],
        idx: vec![0; count * t],
        val: vec![0.0; count * t],
    };
    for (i, row) in rows.enumerate() {
        let mut j = 0;
        for &(k, v) in row.unwrap_or(&[]) {
            let k = k as usize;
            if k > d {
                out.idx[i * t + j] = k as i32;
                out.val[i * t + j] = v;
                j += 1;
            } else if k > 0 {
                out.common[i * d + k - 1] += v;
            }
        }
    }
    out
}

impl Input {
    /// The input of one block of `m` rows whose tokens are already weighed (`summed`,
    /// `[m, c]`), with their votes (`SOURCES * c` per row) and numbers.
    fn summed(
        summed: Vec<f32>,
        numbers: &[[f32; KNN_DIMS]],
        votes: Vec<f32>,
        c: usize,
        device: &Device,
    ) -> Input {
        let m = numbers.len();
        Input {
            m,
            tokens: TokenInput::Summed(Tensor::from_data(
                TensorData::new(summed, [1, m, c]),
                device,
            )),
            votes: Tensor::from_data(TensorData::new(votes, [1, m, SOURCES, c]), device),
            dense: Tensor::from_data(TensorData::new(dense_input(numbers), [1, m, DENSE]), device),
        }
    }
}

/// What the model reads of a set of tracks, before it becomes tensors: token rows (indices
/// into the token table, values) and the scaled numbers.
struct Features<'a> {
    tokens: &'a [Vec<(u32, f32)>],
    numbers: &'a [[f32; KNN_DIMS]],
}

impl Input {
    /// The input of blocks whose rows are `rows[b]` (indices into `features`), with their
    /// neighbour votes `votes[b]` (`SOURCES * c` per row, in the same order).
    #[allow(clippy::too_many_arguments)]
    fn new(
        features: &Features<'_>,
        rows: &[&[usize]],
        votes: &[&[f32]],
        d: usize,
        vocab_rows: usize,
        c: usize,
        device: &Device,
    ) -> Input {
        let b = rows.len();
        let m = rows.iter().map(|r| r.len()).max().unwrap_or(0).max(1);
        let slots = (0..b).flat_map(|k| (0..m).map(move |j| (k, j)));
        let split = split_rows(
            slots
                .clone()
                .map(|(k, j)| rows[k].get(j).map(|&i| features.tokens[i].as_slice())),
            d,
        );
        let t = split.t;
        let mut idx = split.idx;
        if b > 1 {
            for (slot, chunk) in idx.chunks_mut(t).enumerate() {
                let offset = (slot / m * vocab_rows) as i32;
                chunk.iter_mut().for_each(|x| *x += offset);
            }
        }
        let mut v = vec![0f32; b * m * SOURCES * c];
        let mut numbers = vec![[f32::NAN; KNN_DIMS]; b * m];
        for k in 0..b {
            let len = rows[k].len() * SOURCES * c;
            v[k * m * SOURCES * c..k * m * SOURCES * c + len].copy_from_slice(&votes[k][..len]);
            for (j, &i) in rows[k].iter().enumerate() {
                numbers[k * m + j] = features.numbers[i];
            }
        }
        Input {
            m,
            tokens: TokenInput::Split {
                t,
                idx: Tensor::from_data(TensorData::new(idx, [b * m * t]), device),
                val: Tensor::from_data(TensorData::new(split.val, [b * m, t, 1]), device),
                common: (d > 0)
                    .then(|| Tensor::from_data(TensorData::new(split.common, [b, m, d]), device)),
            },
            votes: Tensor::from_data(TensorData::new(v, [b, m, SOURCES, c]), device),
            dense: Tensor::from_data(
                TensorData::new(dense_input(&numbers), [b, m, DENSE]),
                device,
            ),
        }
    }
}

/// A trained model for one layer: everything needed to predict, and nothing else.
#[derive(Debug)]
pub struct TrainedModel {
    kind: LayerKind,
    classes: Vec<SublistId>,
    vocab: Vec<u64>,
    lookup: TokenMap<u32>,
    reference: Reference,
    temperature: f32,
    threshold: f32,
    hidden: usize,
    /// Tokens `1..=dense_tokens` (the most frequent) are dense input columns.
    dense_tokens: usize,
    /// A non-mutual layer's decisions: (top probability, chance the decision is right)
    /// points, both increasing (see [`confidence_curve`]); empty: the top probability.
    confidence: Vec<(f32, f32)>,
    metrics: Metrics,
    net: Net,
    /// The token table of `net` (`[vocabulary + 1, outputs]`), on the CPU for scoring.
    table: Vec<f32>,
    /// Where the weights are, so where scoring runs.
    device: Device,
    scores_on: String,
    /// Whether batches may be scored from several threads at once (the CPU).
    parallel: bool,
}

/// What is stored beside the weights.
#[derive(Serialize, Deserialize)]
struct Meta {
    schema: u32,
    kind: LayerKind,
    classes: Vec<SublistId>,
    vocab: Vec<u64>,
    reference: Reference,
    temperature: f32,
    threshold: f32,
    hidden: usize,
    #[serde(default)]
    dense_tokens: usize,
    #[serde(default)]
    confidence: Vec<(f32, f32)>,
    metrics: Metrics,
}

const MAGIC: &[u8; 4] = b"SLM1";

/// Checks labels against the layer's rules and turns them into class-index sets.
pub fn class_sets(
    kind: LayerKind,
    classes: &[SublistId],
    labels: &[Label],
) -> Result<Vec<Vec<usize>>, LearnError> {
    let rules = kind.rules();
    labels
        .iter()
        .map(|l| match l {
            Label::Void if rules.complete => Err(LearnError::BadLabel(
                "a complete layer has a track labelled with the void".into(),
            )),
            Label::Void => Ok(Vec::new()),
            Label::Sublists(set) => {
                if rules.mutual && set.len() > 1 {
                    return Err(LearnError::BadLabel(
                        "a mutual layer has a track labelled with several sublists".into(),
                    ));
                }
                set.iter()
                    .map(|id| {
                        classes.iter().position(|c| c == id).ok_or_else(|| {
                            LearnError::BadLabel(format!("sublist {} is not in the layer", id.0))
                        })
                    })
                    .collect()
            }
        })
        .collect()
}

/// Number of softmax outputs: the sublists, plus the void in incomplete layers.
fn outputs(kind: LayerKind, classes: usize) -> usize {
    classes + usize::from(!kind.rules().complete)
}

/// Soft target of one label: its sublists share the mass; the void is the last output.
fn target(set: &[usize], outputs: usize) -> Vec<f32> {
    let mut t = vec![0.0; outputs];
    if set.is_empty() {
        t[outputs - 1] = 1.0;
    } else {
        for &c in set {
            t[c] = 1.0 / set.len() as f32;
        }
    }
    t
}

fn log_softmax_rows(logits: &[f32], c: usize, temperature: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(logits.len());
    for row in logits.chunks(c) {
        let max = row
            .iter()
            .fold(f32::NEG_INFINITY, |m, x| m.max(x / temperature));
        let lse = row
            .iter()
            .map(|x| (x / temperature - max).exp())
            .sum::<f32>()
            .ln()
            + max;
        out.extend(row.iter().map(|x| x / temperature - lse));
    }
    out
}

/// The decision for one track from calibrated probabilities (sublists first, then the void in
/// incomplete layers). Returns the chosen classes (empty: the void) and the confidence.
pub(crate) fn decide(
    kind: LayerKind,
    probs: &[f32],
    k: usize,
    threshold: f32,
) -> (Vec<usize>, f32) {
    let top = argmax(probs);
    let confidence = probs[top];
    if top == k {
        return (Vec::new(), confidence);
    }
    let mut set = vec![top];
    if !kind.rules().mutual {
        for (c, p) in probs.iter().enumerate().take(k) {
            if c != top && *p >= threshold {
                set.push(c);
            }
        }
        set.sort_unstable();
    }
    (set, confidence)
}

fn argmax(xs: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in xs.iter().enumerate() {
        if *x > xs[best] {
            best = i;
        }
    }
    best
}

/// samples-F1 of one decision against the truth (empty against empty scores 1).
pub fn set_f1(pred: &[usize], truth: &[usize]) -> f32 {
    if pred.is_empty() && truth.is_empty() {
        return 1.0;
    }
    let both = pred.iter().filter(|p| truth.contains(p)).count();
    2.0 * both as f32 / (pred.len() + truth.len()) as f32
}

/// Labels of weight this many pull each stretch of the confidence curve towards the
/// overall rate, so a few lucky decisions do not make a stretch look certain.
const CURVE_PRIOR: f32 = 2.0;

/// How the top probability maps to the chance a decision is right, from out-of-fold
/// `(top probability, 1 if the decision was right else 0)` pairs: an isotonic (increasing)
/// fit, each stretch drawn towards the overall rate by [`CURVE_PRIOR`] labels. Returns the
/// stretches' (mean top probability, chance) points, both increasing; empty without pairs.
fn confidence_curve(mut pairs: Vec<(f32, f32)>) -> Vec<(f32, f32)> {
    if pairs.is_empty() {
        return Vec::new();
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let overall = pairs.iter().map(|p| p.1).sum::<f32>() / pairs.len() as f32;
    // Pool adjacent violators: (sum of top probabilities, sum of outcomes, count).
    let mut pools: Vec<(f32, f32, f32)> = Vec::new();
    for (top, right) in pairs {
        pools.push((top, right, 1.0));
        while let [.., a, b] = pools.as_slice()
            && a.1 / a.2 >= b.1 / b.2
        {
            let b = pools.pop().unwrap_or_default();
            if let Some(a) = pools.last_mut() {
                *a = (a.0 + b.0, a.1 + b.1, a.2 + b.2);
            }
        }
    }
    let mut floor = 0f32;
    pools
        .into_iter()
        .map(|(tops, rights, n)| {
            let chance = ((rights + CURVE_PRIOR * overall) / (n + CURVE_PRIOR)).max(floor);
            floor = chance;
            (tops / n, chance)
        })
        .collect()
}

/// The chance a decision with top probability `top` is right, read off `curve` (straight
/// between its points, flat beyond its ends); `top` itself where there is no curve.
fn on_curve(curve: &[(f32, f32)], top: f32) -> f32 {
    let Some(&(first_top, first)) = curve.first() else {
        return top;
    };
    if top <= first_top {
        return first;
    }
    for w in curve.windows(2) {
        let ((t0, c0), (t1, c1)) = (w[0], w[1]);
        if top <= t1 {
            let f = if t1 > t0 { (top - t0) / (t1 - t0) } else { 1.0 };
            return c0 + f * (c1 - c0);
        }
    }
    curve.last().map_or(top, |p| p.1)
}

struct Prepared {
    rows: Vec<Vec<(u32, f32)>>,
    dense: Vec<[f32; KNN_DIMS]>,
    targets: Vec<Vec<f32>>,
    weights: Vec<f32>,
}

/// Trains a model for one layer on `tracks` labelled with `labels` (class-index sets into
/// `classes`; empty is the void).
pub fn train(
    compute: &Compute,
    kind: LayerKind,
    classes: &[SublistId],
    tracks: &[LikedTrack],
    labels: &[Vec<usize>],
    config: &TrainConfig,
    progress: &mut dyn FnMut(Progress),
) -> Result<TrainedModel, LearnError> {
    let model = train_unless_stopped(compute, kind, classes, tracks, labels, config, progress)?;
    if config.stop.is_raised() {
        return Err(LearnError::Stopped);
    }
    Ok(model)
}

fn train_unless_stopped(
    compute: &Compute,
    kind: LayerKind,
    classes: &[SublistId],
    tracks: &[LikedTrack],
    labels: &[Vec<usize>],
    config: &TrainConfig,
    progress: &mut dyn FnMut(Progress),
) -> Result<TrainedModel, LearnError> {
    if tracks.len() != labels.len() {
        return Err(LearnError::BadLabel(format!(
            "{} tracks but {} labels",
            tracks.len(),
            labels.len()
        )));
    }
    if tracks.is_empty() {
        return Err(LearnError::NoLabels);
    }
    if classes.is_empty() {
        return Err(LearnError::BadLabel("the layer has no sublists".into()));
    }
    let rules = kind.rules();
    for set in labels {
        if set.iter().any(|&c| c >= classes.len()) {
            return Err(LearnError::BadLabel("a class index is out of range".into()));
        }
        if set.is_empty() && rules.complete {
            return Err(LearnError::BadLabel(
                "a complete layer has a track labelled with the void".into(),
            ));
        }
        if set.len() > 1 && rules.mutual {
            return Err(LearnError::BadLabel(
                "a mutual layer has a track labelled with several sublists".into(),
            ));
        }
    }
    let k = classes.len();
    let c = outputs(kind, k);
    let (device, trained_on) = compute.for_training(tracks.len());
    let encoded = encode_all(tracks);

    // Shuffle once (seeded) so folds and the neighbour sample are spread.
    let mut order: Vec<usize> = (0..tracks.len()).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(config.seed ^ tracks.len() as u64);
    order.shuffle(&mut rng);
    let enc: Vec<_> = order.iter().map(|&i| &encoded[i]).collect();
    let sets: Vec<&Vec<usize>> = order.iter().map(|&i| &labels[i]).collect();
    let n = enc.len();

    // Vocabulary: the most frequent tokens of the labelled tracks.
    let mut counts: TokenMap<u32> = TokenMap::default();
    for e in &enc {
        for (h, _) in &e.tokens {
            *counts.entry(*h).or_default() += 1;
        }
    }
    let mut vocab: Vec<(u64, u32)> = counts.into_iter().collect();
    vocab.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    vocab.truncate(config.max_vocab);
    // The most frequent tokens (bins, descriptor pairs, categories) enter the model as dense
    // columns of one matrix product; the rarer ones (artists, albums, words) as a sparse sum.
    let common = (n / 32).max(2) as u32;
    let dense_tokens = vocab
        .iter()
        .take(MAX_DENSE_TOKENS)
        .take_while(|(_, count)| *count >= common)
        .count();
    let vocab: Vec<u64> = vocab.into_iter().map(|(h, _)| h).collect();
    let lookup: TokenMap<u32> = vocab
        .iter()
        .enumerate()
        .map(|(i, h)| (*h, i as u32 + 1))
        .collect();
    let rows: Vec<Vec<(u32, f32)>> = enc.iter().map(|e| token_row(&e.tokens, &lookup)).collect();

    // Targets and class weights (inverse frequency, so small sublists count as much).
    let targets: Vec<Vec<f32>> = sets.iter().map(|s| target(s, c)).collect();
    let mut freq = vec![0f32; c];
    for t in &targets {
        for (f, x) in freq.iter_mut().zip(t) {
            *f += x;
        }
    }
    let present = freq.iter().filter(|f| **f > 0.0).count().max(1) as f32;
    let class_weight: Vec<f32> = freq
        .iter()
        .map(|f| {
            if *f > 0.0 {
                n as f32 / (present * f)
            } else {
                0.0
            }
        })
        .collect();
    let weights: Vec<f32> = targets
        .iter()
        .map(|t| t.iter().zip(&class_weight).map(|(a, b)| a * b).sum())
        .collect();
    let all = Prepared {
        rows,
        dense: enc.iter().map(|e| e.knn).collect(),
        targets,
        weights,
    };

    let folds = if n >= 2 * config.folds.max(2) {
        config.folds
    } else {
        0
    };
    // Many labels: one held-out fifth is enough, and the model trained on the rest is kept.
    let holdout_only = folds > 0 && n >= config.holdout_from;
    let (splits, runs) = if holdout_only { (5, 1) } else { (folds, folds) };
    let checks = config.max_epochs / config.check_every.max(1);
    let fold_of = stratified_folds(&sets, splits.max(1), k);
    let covered: Vec<usize> = (0..n).filter(|&i| fold_of[i] < runs).collect();

    // Every fold and the final fit train at once, as blocks of one batched model: each block
    // has its own weights, rows and neighbour votes, so each learns exactly what it would
    // alone, for one pass of fixed costs per epoch instead of one per fold.
    let mut blocks = Vec::new();
    if folds > 0 {
        for f in 0..runs {
            let tr: Vec<usize> = (0..n).filter(|&i| fold_of[i] != f).collect();
            let ho: Vec<usize> = (0..n).filter(|&i| fold_of[i] == f).collect();
            let tr_enc: Vec<_> = tr.iter().map(|&i| enc[i]).collect();
            let ho_enc: Vec<_> = ho.iter().map(|&i| enc[i]).collect();
            let tr_targets: Vec<Vec<f32>> = tr.iter().map(|&i| all.targets[i].clone()).collect();
            let reference = Reference::new(&tr_enc, tr_targets);
            blocks.push(Block {
                train_votes: reference.votes_all(&tr_enc, true, c),
                held_votes: reference.votes_all(&ho_enc, false, c),
                train: tr,
                held: ho,
            });
        }
    }
    let reference = Reference::new(&enc, all.targets.clone());
    let final_block = !holdout_only;
    if final_block {
        blocks.push(Block {
            train: (0..n).collect(),
            held: Vec::new(),
            train_votes: reference.votes_all(&enc, true, c),
            held_votes: Vec::new(),
        });
    }
    let epochs_run = if folds > 0 {
        config.max_epochs
    } else {
        config.max_epochs / 2
    };

    // Out-of-fold logits at each check, for early stopping, calibration and the threshold;
    // the kept block's weights at each check, for the epoch early stopping chooses.
    let mut oof = vec![vec![0f32; n * c]; checks];
    let mut kept: Vec<Net> = Vec::new();
    let keep = blocks.len() - 1;
    let vocab_rows = vocab.len() + 1;
    let data = BlockData::new(&all, &blocks, dense_tokens, vocab_rows, c, config, &device);
    let last = fit_blocks(
        &device,
        &data,
        &blocks,
        vocab_rows,
        c,
        config,
        epochs_run,
        &mut |epoch, loss, net: &BlockNet, held: &[f32]| {
            kept.push(net.block(keep));
            let check = epoch / config.check_every.max(1) - 1;
            let (mut right, mut total) = (0, 0);
            for (b, block) in blocks.iter().enumerate().take(runs.min(blocks.len())) {
                if folds == 0 {
                    break;
                }
                for (j, &i) in block.held.iter().enumerate() {
                    let at = (b * data.held_rows + j) * c;
                    let row = &held[at..at + c];
                    if let Some(slot) = oof.get_mut(check) {
                        slot[i * c..(i + 1) * c].copy_from_slice(row);
                    }
                    right += usize::from(argmax(row) == argmax(&all.targets[i]));
                    total += 1;
                }
            }
            progress(Progress {
                epoch,
                epochs: epochs_run,
                loss,
                held_out_accuracy: (total > 0).then(|| right as f32 / total as f32),
            });
        },
    );

    // Early stopping: the check with the lowest out-of-fold loss; then temperature and threshold.
    let (epochs, temperature, threshold, held_acc, held_f1, confidence) = if folds > 0 {
        let nll = |logits: &[f32], t: f32| -> f32 {
            let lp = log_softmax_rows(logits, c, t);
            let mut s = 0.0;
            for &i in &covered {
                for j in 0..c {
                    s -= all.weights[i] * all.targets[i][j] * lp[i * c + j];
                }
            }
            s
        };
        let best = (0..checks)
            .min_by(|a, b| nll(&oof[*a], 1.0).total_cmp(&nll(&oof[*b], 1.0)))
            .unwrap_or(checks.saturating_sub(1));
        let logits = &oof[best];
        let temperature = (0..40)
            .map(|i| (0.2f32.ln() + (25f32.ln()) * i as f32 / 39.0).exp())
            .min_by(|a, b| nll(logits, *a).total_cmp(&nll(logits, *b)))
            .unwrap_or(1.0);
        let probs: Vec<f32> = log_softmax_rows(logits, c, temperature)
            .into_iter()
            .map(f32::exp)
            .collect();
        let truth: Vec<Vec<usize>> = sets.iter().map(|s| (*s).clone()).collect();
        let score = |th: f32| -> f32 {
            covered
                .iter()
                .map(|&i| {
                    set_f1(
                        &decide(kind, &probs[i * c..(i + 1) * c], k, th).0,
                        &truth[i],
                    )
                })
                .sum::<f32>()
                / covered.len().max(1) as f32
        };
        let threshold = if rules.mutual {
            1.0
        } else {
            [2.0f32, 0.5, 0.4, 0.35, 0.3, 0.25, 0.2, 0.15, 0.1]
                .into_iter()
                .fold((2.0, f32::NEG_INFINITY), |(bt, bs), th| {
                    let s = score(th);
                    if s > bs + 1e-6 { (th, s) } else { (bt, bs) }
                })
                .0
        };
        let acc = covered
            .iter()
            .filter(|&&i| argmax(&probs[i * c..(i + 1) * c]) == argmax(&all.targets[i]))
            .count() as f32
            / covered.len().max(1) as f32;
        // A non-mutual decision may name several sublists, whose probabilities share the
        // mass: how often decisions were exactly right says more than the top probability.
        let confidence = if rules.mutual {
            Vec::new()
        } else {
            confidence_curve(
                covered
                    .iter()
                    .map(|&i| {
                        let (set, top) = decide(kind, &probs[i * c..(i + 1) * c], k, threshold);
                        let right = set_f1(&set, &truth[i]) >= 1.0;
                        (top, if right { 1.0 } else { 0.0 })
                    })
                    .collect(),
            )
        };
        (
            (best + 1) * config.check_every,
            temperature,
            threshold,
            Some(acc),
            Some(score(threshold)),
            confidence,
        )
    } else {
        (epochs_run, 1.0, 0.5, None, None, Vec::new())
    };

    // The kept block (the fit on every label, or with many labels the one trained on four
    // fifths) as it stood after the chosen number of epochs.
    let at = (epochs / config.check_every.max(1)).clamp(1, kept.len().max(1)) - 1;
    if folds > 0 && at >= kept.len() {
        // Stopped before the first check: the caller reports it.
        return Err(LearnError::Stopped);
    }
    let net = if folds == 0 {
        last.block(keep)
    } else {
        kept.swap_remove(at)
    };
    progress(Progress {
        epoch: epochs_run,
        epochs: epochs_run,
        loss: f32::NAN,
        held_out_accuracy: held_acc,
    });
    let cpu = Device::flex();
    Ok(TrainedModel {
        kind,
        classes: classes.to_vec(),
        vocab,
        lookup,
        reference,
        temperature,
        threshold,
        hidden: config.hidden,
        dense_tokens,
        confidence,
        metrics: Metrics {
            labels: n,
            held_out_accuracy: held_acc,
            held_out_f1: held_f1,
            epochs,
            temperature,
            threshold: (!rules.mutual && threshold <= 1.0).then_some(threshold),
            device: trained_on.to_string(),
        },
        table: read(net.tokens.val()),
        net: net.to_device(&cpu),
        device: cpu,
        scores_on: CPU_NAME.to_string(),
        parallel: true,
    })
}

/// One chunk's model input before it becomes tensors: weighed tokens, numbers, votes.
type Inputs = (Vec<f32>, Vec<[f32; KNN_DIMS]>, Vec<f32>);

fn dense_input(rows: &[[f32; KNN_DIMS]]) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * DENSE);
    for r in rows {
        out.extend(
            r.iter()
                .map(|x| if x.is_nan() { 0.0 } else { x.clamp(-5.0, 5.0) }),
        );
        out.extend(r.iter().map(|x| if x.is_nan() { 1.0 } else { 0.0 }));
    }
    out
}

fn token_row(tokens: &[(u64, f32)], lookup: &TokenMap<u32>) -> Vec<(u32, f32)> {
    tokens
        .iter()
        .filter_map(|(h, v)| lookup.get(h).map(|i| (*i, *v)))
        .collect()
}

/// Folds that hold each class's tracks in turn.
fn stratified_folds(sets: &[&Vec<usize>], folds: usize, k: usize) -> Vec<usize> {
    let mut next = vec![0usize; k + 1];
    sets.iter()
        .map(|s| {
            let class = s.first().copied().unwrap_or(k);
            let f = next[class] % folds;
            next[class] += 1;
            f
        })
        .collect()
}

/// The most tracks scored in one chunk (bounds the memory of one forward pass).
const MAX_CHUNK: usize = 4096;
/// The fewest tracks worth a chunk of their own.
const MIN_CHUNK: usize = 256;

/// The most tokens that enter the model as dense columns.
const MAX_DENSE_TOKENS: usize = 1024;

fn read<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap_or_default()
}

/// One model of a batched training: the rows it learns from (indices into the prepared
/// labels), the rows it is checked on, and the neighbour votes of each.
struct Block {
    train: Vec<usize>,
    held: Vec<usize>,
    train_votes: Vec<f32>,
    held_votes: Vec<f32>,
}

/// The hidden network over the numbers, one per block.
#[derive(Module, Debug)]
pub(crate) struct BlockHidden {
    /// `[blocks, DENSE, hidden]`
    hidden_w: Param<Tensor<3>>,
    /// `[blocks, hidden]`
    hidden_b: Param<Tensor<2>>,
    /// `[blocks, hidden, classes]`
    out_w: Param<Tensor<3>>,
    /// `[blocks, classes]`
    out_b: Param<Tensor<2>>,
}

/// Several [`Net`]s trained side by side: block `b`'s weights are entry `b` of each parameter.
/// Adam works element by element, so each block learns exactly what it would alone.
#[derive(Module, Debug)]
pub(crate) struct BlockNet {
    /// `[blocks, vocabulary + 1, classes]`
    tokens: Param<Tensor<3>>,
    /// `[blocks, classes]`
    bias: Param<Tensor<2>>,
    /// `[blocks, SOURCES]`
    trust: Param<Tensor<2>>,
    hidden: Option<BlockHidden>,
}

/// What a batched training learns from.
struct BlockData {
    train: Input,
    held: Option<Input>,
    held_rows: usize,
    /// `[blocks, m, classes]`
    targets: Tensor<3>,
    /// Class weights normalised per block: `[blocks, m, 1]`.
    weights: Tensor<3>,
    /// L2 factors of the token weights and of the hidden network: `[blocks, 1, 1]`.
    l2: Tensor<3>,
    dense_l2: Tensor<3>,
}

impl BlockData {
    fn new(
        all: &Prepared,
        blocks: &[Block],
        d: usize,
        vocab_rows: usize,
        c: usize,
        config: &TrainConfig,
        device: &Device,
    ) -> BlockData {
        let ad = device.clone().autodiff();
        let b = blocks.len();
        let train_rows: Vec<&[usize]> = blocks.iter().map(|k| k.train.as_slice()).collect();
        let train_votes: Vec<&[f32]> = blocks.iter().map(|k| k.train_votes.as_slice()).collect();
        let features = Features {
            tokens: &all.rows,
            numbers: &all.dense,
        };
        let train = Input::new(&features, &train_rows, &train_votes, d, vocab_rows, c, &ad);
        let m = train.m;
        let held_rows = blocks.iter().map(|k| k.held.len()).max().unwrap_or(0);
        let held = (held_rows > 0).then(|| {
            let rows: Vec<&[usize]> = blocks.iter().map(|k| k.held.as_slice()).collect();
            let votes: Vec<&[f32]> = blocks.iter().map(|k| k.held_votes.as_slice()).collect();
            Input::new(&features, &rows, &votes, d, vocab_rows, c, device)
        });
        let mut targets = vec![0f32; b * m * c];
        let mut weights = vec![0f32; b * m];
        let mut l2 = Vec::with_capacity(b);
        let mut dense_l2 = Vec::with_capacity(b);
        for (k, block) in blocks.iter().enumerate() {
            let wsum: f32 = block
                .train
                .iter()
                .map(|&i| all.weights[i])
                .sum::<f32>()
                .max(1e-6);
            for (j, &i) in block.train.iter().enumerate() {
                targets[(k * m + j) * c..(k * m + j + 1) * c].copy_from_slice(&all.targets[i]);
                weights[k * m + j] = all.weights[i] / wsum;
            }
            let n = block.train.len().max(1) as f32;
            l2.push(config.l2 / n);
            dense_l2.push(config.dense_l2 / n);
        }
        BlockData {
            train,
            held,
            held_rows,
            targets: Tensor::from_data(TensorData::new(targets, [b, m, c]), &ad),
            weights: Tensor::from_data(TensorData::new(weights, [b, m, 1]), &ad),
            l2: Tensor::from_data(TensorData::new(l2, [b, 1, 1]), &ad),
            dense_l2: Tensor::from_data(TensorData::new(dense_l2, [b, 1, 1]), &ad),
        }
    }
}

impl BlockNet {
    fn new(
        blocks: usize,
        vocab_rows: usize,
        classes: usize,
        config: &TrainConfig,
        device: &Device,
    ) -> BlockNet {
        let trust: Vec<f32> = (0..blocks).flat_map(|_| config.trust).collect();
        let hidden = (config.hidden > 0).then(|| {
            // Stacked from one initialised network per block, as leaves of their own.
            let nets: Vec<Net> = (0..blocks)
                .map(|_| Net::new(1, classes, config.trust, config.hidden, device))
                .collect();
            let stack2 = |f: &dyn Fn(&Net) -> Tensor<2>| {
                Param::from_tensor(Tensor::stack::<3>(nets.iter().map(f).collect(), 0).detach())
            };
            let stack1 = |f: &dyn Fn(&Net) -> Tensor<1>| {
                Param::from_tensor(Tensor::stack::<2>(nets.iter().map(f).collect(), 0).detach())
            };
            let linear = |n: &Net, out: bool| -> Linear {
                let l = if out { &n.out } else { &n.hidden };
                l.clone().expect("a hidden layer")
            };
            let bias = |l: Linear| -> Tensor<1> { l.bias.expect("a bias").val() };
            BlockHidden {
                hidden_w: stack2(&|n| linear(n, false).weight.val()),
                hidden_b: stack1(&|n| bias(linear(n, false))),
                out_w: stack2(&|n| linear(n, true).weight.val()),
                out_b: stack1(&|n| bias(linear(n, true))),
            }
        });
        BlockNet {
            tokens: Param::from_tensor(Tensor::zeros([blocks, vocab_rows, classes], device)),
            bias: Param::from_tensor(Tensor::zeros([blocks, classes], device)),
            trust: Param::from_tensor(Tensor::from_data(
                TensorData::new(trust, [blocks, SOURCES]),
                device,
            )),
            hidden,
        }
    }

    fn forward(&self, x: &Input) -> Tensor<3> {
        Weights {
            tokens: self.tokens.val(),
            bias: self.bias.val(),
            trust: self.trust.val(),
            hidden: self.hidden.as_ref().map(|h| Hidden {
                hidden_w: h.hidden_w.val(),
                hidden_b: h.hidden_b.val(),
                out_w: h.out_w.val(),
                out_b: h.out_b.val(),
            }),
        }
        .forward(x)
    }

    /// Sum over blocks of each block's L2 factor times its squared weights.
    fn penalty(&self, data: &BlockData) -> Tensor<1> {
        let squares = |t: Tensor<3>| t.powi_scalar(2).sum_dim(2).sum_dim(1);
        let tokens = (squares(self.tokens.val()) * data.l2.clone()).sum();
        match &self.hidden {
            Some(h) => {
                let dense = squares(h.hidden_w.val()) + squares(h.out_w.val());
                tokens + (dense * data.dense_l2.clone()).sum()
            }
            None => tokens,
        }
    }

    /// Block `b` as a model of its own.
    fn block(&self, b: usize) -> Net {
        fn pick3(t: Tensor<3>, b: usize) -> Tensor<2> {
            let [_, x, y] = t.dims();
            t.narrow(0, b, 1).reshape([x, y])
        }
        fn pick2(t: Tensor<2>, b: usize) -> Tensor<1> {
            let [_, x] = t.dims();
            t.narrow(0, b, 1).reshape([x])
        }
        let (hidden, out) = match &self.hidden {
            Some(h) => (
                Some(Linear {
                    weight: Param::from_tensor(pick3(h.hidden_w.val(), b)),
                    bias: Some(Param::from_tensor(pick2(h.hidden_b.val(), b))),
                }),
                Some(Linear {
                    weight: Param::from_tensor(pick3(h.out_w.val(), b)),
                    bias: Some(Param::from_tensor(pick2(h.out_b.val(), b))),
                }),
            ),
            None => (None, None),
        };
        Net {
            tokens: Param::from_tensor(pick3(self.tokens.val(), b)),
            bias: Param::from_tensor(pick2(self.bias.val(), b)),
            trust: Param::from_tensor(pick2(self.trust.val(), b)),
            hidden,
            out,
        }
    }
}

/// What a batched training calls at each check: the epoch, the loss, the blocks and their
/// held-out logits.
type CheckFn<'a> = dyn FnMut(usize, f32, &BlockNet, &[f32]) + 'a;

/// Full-batch training of every block at once for `epochs`. Every `check_every` epochs,
/// `check` gets the epoch, the loss, the blocks (inference copy) and their logits on the
/// held-out rows (`[blocks, held rows, classes]`, flattened). Returns the blocks at the end.
#[allow(clippy::too_many_arguments)]
fn fit_blocks(
    device: &Device,
    data: &BlockData,
    blocks: &[Block],
    vocab_rows: usize,
    c: usize,
    config: &TrainConfig,
    epochs: usize,
    check: &mut CheckFn<'_>,
) -> BlockNet {
    let ad = device.clone().autodiff();
    let mut net = BlockNet::new(blocks.len(), vocab_rows, c, config, &ad);
    let mut optim = AdamConfig::new().init();
    for epoch in 1..=epochs {
        if config.stop.is_raised() {
            break;
        }
        let logits = net.forward(&data.train);
        let lp = activation::log_softmax(logits, 2);
        let ce = (lp * data.targets.clone() * data.weights.clone())
            .sum()
            .neg();
        let loss = ce + net.penalty(data);
        let report = epoch % config.check_every.max(1) == 0;
        let loss_value = if report {
            read(loss.clone()).first().copied()
        } else {
            None
        };
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(config.learning_rate, net, grads);
        if let Some(l) = loss_value {
            let valid = net.valid();
            let held = data
                .held
                .as_ref()
                .map(|h| read(valid.forward(h)))
                .unwrap_or_default();
            check(epoch, l, &valid, &held);
        }
    }
    net.valid()
}

impl TrainedModel {
    pub fn kind(&self) -> LayerKind {
        self.kind
    }

    /// The sublists the model knows, in its class order.
    pub fn classes(&self) -> &[SublistId] {
        &self.classes
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Where scoring runs: the CPU after training or loading, or the device the model was
    /// moved to with [`TrainedModel::to_compute`].
    pub fn scores_on(&self) -> &str {
        &self.scores_on
    }

    /// Moves the weights to `compute`'s device, so that the network's part of scoring runs
    /// there (features and neighbour votes are always computed on the CPU). Predictions stay
    /// the same up to floating-point rounding.
    pub fn to_compute(self, compute: &Compute) -> TrainedModel {
        TrainedModel {
            net: self.net.to_device(&compute.device),
            device: compute.device.clone(),
            scores_on: compute.name().to_string(),
            parallel: compute.parallel(),
            ..self
        }
    }

    /// Raw (uncalibrated) output scores, `outputs` per track. Features and votes are built on
    /// the CPU in parallel; the network runs on the model's device, from one thread unless
    /// that device is the CPU.
    fn logits(&self, tracks: &[LikedTrack]) -> Vec<f32> {
        let c = outputs(self.kind, self.classes.len());
        // One chunk per thread (more for many tracks, to bound the memory of one chunk).
        let threads = rayon::current_num_threads().max(1);
        let chunks = tracks.len().div_ceil(MAX_CHUNK).next_multiple_of(threads);
        let size = tracks.len().div_ceil(chunks.max(1)).max(MIN_CHUNK);
        let inputs = |chunk: &[LikedTrack]| {
            let encoded: Vec<_> = chunk.iter().map(encode).collect();
            let mut votes = vec![0f32; chunk.len() * SOURCES * c];
            let mut summed = vec![0f32; chunk.len() * c];
            let rows = votes
                .chunks_exact_mut(SOURCES * c)
                .zip(summed.chunks_exact_mut(c));
            for (e, (votes, summed)) in encoded.iter().zip(rows) {
                self.reference.votes_into(e, None, c, votes);
                for (h, v) in &e.tokens {
                    if let Some(&k) = self.lookup.get(h) {
                        let k = k as usize;
                        for (s, w) in summed.iter_mut().zip(&self.table[k * c..(k + 1) * c]) {
                            *s += v * w;
                        }
                    }
                }
            }
            let numbers: Vec<_> = encoded.iter().map(|e| e.knn).collect();
            (summed, numbers, votes)
        };
        let forward = |(summed, numbers, votes): Inputs| {
            let input = Input::summed(summed, &numbers, votes, c, &self.device);
            read(self.net.forward(&input))
        };
        let chunks: Vec<Vec<f32>> = if self.parallel {
            tracks
                .par_chunks(size)
                .map(|chunk| forward(inputs(chunk)))
                .collect()
        } else {
            let prepared: Vec<Inputs> = tracks.par_chunks(size).map(inputs).collect();
            prepared.into_iter().map(forward).collect()
        };
        chunks.concat()
    }

    /// Calibrated probabilities per track: the sublists, then the void in incomplete layers.
    pub fn probabilities(&self, tracks: &[LikedTrack]) -> Vec<Vec<f32>> {
        let c = outputs(self.kind, self.classes.len());
        log_softmax_rows(&self.logits(tracks), c, self.temperature)
            .chunks(c)
            .map(|r| r.iter().map(|x| x.exp()).collect())
            .collect()
    }

    /// Where each track goes, with its confidence. Every decision obeys the layer's rules.
    pub fn predict(&self, tracks: &[LikedTrack]) -> Vec<Prediction> {
        let k = self.classes.len();
        self.probabilities(tracks)
            .into_iter()
            .map(|p| {
                let (set, top) = decide(self.kind, &p, k, self.threshold);
                Prediction {
                    label: Label::from_set(set.iter().map(|&i| self.classes[i]).collect()),
                    confidence: on_curve(&self.confidence, top),
                    probabilities: self
                        .classes
                        .iter()
                        .copied()
                        .zip(p.iter().copied())
                        .collect(),
                    void_probability: p.get(k).copied(),
                }
            })
            .collect()
    }

    /// Serialises the model: a header, the settings and reference labels (JSON), then the
    /// burn weights (burnpack).
    pub fn to_bytes(&self) -> Result<Vec<u8>, LearnError> {
        let meta = Meta {
            schema: FEATURE_SCHEMA,
            kind: self.kind,
            classes: self.classes.clone(),
            vocab: self.vocab.clone(),
            reference: self.reference.clone(),
            temperature: self.temperature,
            threshold: self.threshold,
            hidden: self.hidden,
            dense_tokens: self.dense_tokens,
            confidence: self.confidence.clone(),
            metrics: self.metrics.clone(),
        };
        let meta = serde_json::to_vec(&meta).map_err(|e| LearnError::Corrupt(e.to_string()))?;
        let weights = self
            .net
            .clone()
            .into_record()
            .into_bytes()
            .map_err(|e| LearnError::Corrupt(format!("{e:?}")))?;
        let mut out = Vec::with_capacity(12 + meta.len() + weights.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FEATURE_SCHEMA.to_le_bytes());
        out.extend_from_slice(&(meta.len() as u64).to_le_bytes());
        out.extend_from_slice(&meta);
        out.extend_from_slice(&weights);
        Ok(out)
    }

    /// Loads a model saved by [`TrainedModel::to_bytes`]; it predicts exactly as before.
    pub fn from_bytes(bytes: &[u8]) -> Result<TrainedModel, LearnError> {
        if bytes.len() < 16 || &bytes[..4] != MAGIC {
            return Err(LearnError::Corrupt("not a sublist model".into()));
        }
        let schema = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        if schema != FEATURE_SCHEMA {
            return Err(LearnError::SchemaMismatch {
                stored: schema,
                current: FEATURE_SCHEMA,
            });
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&bytes[8..16]);
        let len = usize::try_from(u64::from_le_bytes(len))
            .map_err(|_| LearnError::Corrupt("bad header".into()))?;
        let end = 16usize
            .checked_add(len)
            .filter(|e| *e <= bytes.len())
            .ok_or_else(|| LearnError::Corrupt("truncated".into()))?;
        let mut meta: Meta = serde_json::from_slice(&bytes[16..end])
            .map_err(|e| LearnError::Corrupt(e.to_string()))?;
        meta.reference.build_index();
        let c = outputs(meta.kind, meta.classes.len());
        if meta.classes.is_empty() || meta.reference.targets.iter().any(|t| t.len() != c) {
            return Err(LearnError::Corrupt("inconsistent classes".into()));
        }
        let device = Device::flex();
        let record =
            burn::store::ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes[end..].to_vec()))
                .map_err(|e| LearnError::Corrupt(format!("{e:?}")))?;
        let net = Net::new(
            meta.vocab.len() + 1,
            c,
            [0.0; SOURCES],
            meta.hidden,
            &device,
        )
        .try_load_record(record)
        .map_err(|e| LearnError::Corrupt(format!("{e:?}")))?;
        if net.tokens.dims() != [meta.vocab.len() + 1, c] || meta.dense_tokens > meta.vocab.len() {
            return Err(LearnError::Corrupt("weights do not fit the classes".into()));
        }
        let lookup = meta
            .vocab
            .iter()
            .enumerate()
            .map(|(i, h)| (*h, i as u32 + 1))
            .collect();
        let table = read(net.tokens.val());
        Ok(TrainedModel {
            table,
            kind: meta.kind,
            classes: meta.classes,
            vocab: meta.vocab,
            lookup,
            reference: meta.reference,
            temperature: meta.temperature,
            threshold: meta.threshold,
            hidden: meta.hidden,
            dense_tokens: meta.dense_tokens,
            confidence: meta.confidence,
            metrics: meta.metrics,
            net,
            device,
            scores_on: CPU_NAME.to_string(),
            parallel: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_obey_the_four_rules() {
        let p = [0.30, 0.28, 0.02, 0.40];
        let (set, conf) = decide(LayerKind::MutualIncomplete, &p, 3, 0.2);
        assert!(set.is_empty());
        assert!((conf - 0.40).abs() < 1e-6);
        let (set, _) = decide(LayerKind::MultiIncomplete, &p, 3, 0.2);
        assert!(set.is_empty(), "void on top means the void");
        let p = [0.45, 0.40, 0.15];
        assert_eq!(decide(LayerKind::MutualComplete, &p, 3, 0.2).0, vec![0]);
        assert_eq!(decide(LayerKind::MultiComplete, &p, 3, 0.2).0, vec![0, 1]);
        assert_eq!(decide(LayerKind::MultiComplete, &p, 3, 2.0).0, vec![0]);
    }

    #[test]
    fn f1_matches_the_protocol() {
        assert_eq!(set_f1(&[], &[]), 1.0);
        assert_eq!(set_f1(&[1], &[]), 0.0);
        assert_eq!(set_f1(&[], &[1]), 0.0);
        assert!((set_f1(&[1, 2], &[1]) - 2.0 / 3.0).abs() < 1e-6);
    }

    /// `n` tracks in three groups that differ in artists, albums, words and sound, some with
    /// numbers missing; the label is the group.
    fn grouped_tracks(n: usize) -> (Vec<LikedTrack>, Vec<Vec<usize>>) {
        use crate::domain::{AudioFeatures, Track, TrackId};
        use chrono::TimeZone;
        (0..n)
            .map(|i| {
                let g = i % 3;
                let id = TrackId::parse(&format!("{:0>22}", i)).expect("a track id");
                let mut t = Track::bare(id, format!("Song {} of group {g} take {}", i, i % 7));
                t.artists = vec![(Some(format!("artist{}", g * 10 + i % 4)), "A".into())];
                t.album_id = Some(format!("album{}", g * 100 + i % 9));
                t.album_name = Some(format!("Album {}", i % 5));
                t.release_date = (i % 4 != 0).then(|| format!("{}-01-01", 1990 + g * 10 + i % 6));
                t.duration_ms = Some(150_000 + 20_000 * g as u32 + (i as u32 % 13) * 1000);
                if i % 5 != 0 {
                    let x = 0.2 + 0.3 * g as f32 + 0.01 * (i % 10) as f32;
                    t.audio = Some(AudioFeatures::from_values([
                        x,
                        x,
                        5.0,
                        -8.0 + x,
                        1.0,
                        x / 3.0,
                        x / 2.0,
                        0.01,
                        0.1,
                        x,
                        90.0 + 30.0 * x,
                    ]));
                }
                let liked = LikedTrack {
                    track: t,
                    added_at: chrono::Utc
                        .with_ymd_and_hms(2023, 1, 1 + i as u32 % 28, 0, 0, 0)
                        .unwrap(),
                };
                (liked, vec![g])
            })
            .unzip()
    }

    #[test]
    fn scoring_weighs_tokens_as_the_training_forward_does() {
        let (tracks, labels) = grouped_tracks(90);
        let ids: Vec<SublistId> = (0..3).map(SublistId).collect();
        for hidden in [0, 4] {
            let config = TrainConfig {
                max_epochs: 20,
                hidden,
                ..TrainConfig::default()
            };
            let model = train(
                &Compute::cpu(),
                LayerKind::MutualIncomplete,
                &ids,
                &tracks,
                &labels,
                &config,
                &mut |_| {},
            )
            .expect("it trains");
            assert!(model.dense_tokens > 0, "some tokens are dense columns");
            let c = outputs(model.kind, ids.len());
            let scored = model.logits(&tracks);

            // The same tracks through the input training builds: dense and sparse tokens.
            let encoded = encode_all(&tracks);
            let refs: Vec<_> = encoded.iter().collect();
            let votes = model.reference.votes_all(&refs, false, c);
            let tokens: Vec<_> = encoded
                .iter()
                .map(|e| token_row(&e.tokens, &model.lookup))
                .collect();
            let numbers: Vec<_> = encoded.iter().map(|e| e.knn).collect();
            let rows: Vec<usize> = (0..tracks.len()).collect();
            let features = Features {
                tokens: &tokens,
                numbers: &numbers,
            };
            let input = Input::new(
                &features,
                &[rows.as_slice()],
                &[votes.as_slice()],
                model.dense_tokens,
                model.vocab.len() + 1,
                c,
                &model.device,
            );
            let trained = read(model.net.forward(&input));
            assert_eq!(scored.len(), tracks.len() * c);
            assert_eq!(trained.len(), scored.len());
            let worst = scored
                .iter()
                .zip(&trained)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-4, "scoring differs from training by {worst}");
            assert!(
                scored.iter().any(|x| x.abs() > 0.1),
                "the model learned something"
            );
        }
    }

    #[test]
    fn the_confidence_curve_rises_with_the_top_probability_and_doubts_a_few_lucky_guesses() {
        // Low top probabilities mostly wrong, high ones mostly right, one wrong among them.
        let mut pairs: Vec<(f32, f32)> = (0..20)
            .map(|i| (0.2 + 0.01 * i as f32, if i % 4 == 0 { 1.0 } else { 0.0 }))
            .collect();
        pairs.extend((0..20).map(|i| (0.4 + 0.01 * i as f32, if i == 3 { 0.0 } else { 1.0 })));
        let curve = confidence_curve(pairs);
        assert!(
            curve
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
        );
        let (low, high) = (on_curve(&curve, 0.25), on_curve(&curve, 0.55));
        assert!(low < 0.4, "mostly wrong down there: {low}");
        assert!(
            high > 0.8,
            "mostly right up there, though the top probability is low: {high}"
        );
        assert!(on_curve(&curve, 0.0) <= low && on_curve(&curve, 1.0) >= high);
        assert_eq!(on_curve(&[], 0.42), 0.42, "no curve: the top probability");

        // Three right guesses alone are not certainty.
        let lucky = confidence_curve(vec![
            (0.3, 0.0),
            (0.3, 0.0),
            (0.9, 1.0),
            (0.9, 1.0),
            (0.9, 1.0),
        ]);
        let top = on_curve(&lucky, 0.9);
        assert!(top < 0.9 && top > 0.6, "{top}");
    }

    #[test]
    fn a_non_mutual_model_is_confident_where_its_decisions_were_right() {
        // Every track in two sublists: the top probability shares its mass and stays near
        // one half, yet the decisions are right.
        let (tracks, groups) = grouped_tracks(120);
        let labels: Vec<Vec<usize>> = groups.iter().map(|g| vec![g[0], 3]).collect();
        let ids: Vec<SublistId> = (0..4).map(SublistId).collect();
        let model = train(
            &Compute::cpu(),
            LayerKind::MultiComplete,
            &ids,
            &tracks,
            &labels,
            &TrainConfig::default(),
            &mut |_| {},
        )
        .expect("it trains");
        assert!(!model.confidence.is_empty());
        let predictions = model.predict(&tracks);
        let right: Vec<&Prediction> = predictions
            .iter()
            .zip(&groups)
            .filter(|(p, g)| p.label == Label::from_set([ids[g[0]], ids[3]].into()))
            .map(|(p, _)| p)
            .collect();
        assert!(right.len() > 100, "{} of 120 right", right.len());
        let top = |p: &Prediction| p.probabilities.iter().map(|x| x.1).fold(0f32, f32::max);
        assert!(
            right.iter().all(|p| top(p) < 0.7),
            "the top probability shares its mass"
        );
        assert!(
            right.iter().all(|p| p.confidence > 0.8),
            "right decisions are confident: {:?}",
            right.iter().map(|p| p.confidence).collect::<Vec<_>>()
        );
        let again =
            TrainedModel::from_bytes(&model.to_bytes().expect("it saves")).expect("it loads");
        assert_eq!(
            again.predict(&tracks),
            predictions,
            "the curve is stored with the model"
        );
    }

    #[test]
    fn targets_share_mass_and_void_is_last() {
        assert_eq!(target(&[], 3), vec![0.0, 0.0, 1.0]);
        assert_eq!(target(&[0, 1], 3), vec![0.5, 0.5, 0.0]);
    }
}
