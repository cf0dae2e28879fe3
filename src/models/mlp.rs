//! A multilayer perceptron trained with burn: standardised inputs, ReLU hidden layers,
//! Adam, mini-batches, and early stopping on the tune rows (the weights of the best epoch
//! are kept).
//!
//! Training runs on burn's default device: the ndarray CPU backend, or a GPU when the
//! crate is built with the `cuda` feature. The fitted weights are exported to plain
//! vectors, so scoring needs no tensor library and allocates nothing per row; a test checks
//! that this forward pass equals burn's.

use std::cell::RefCell;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::data::Table;
use super::logistic::{Standardizer, finish};
use crate::error::{Error, Result};

/// Settings of [`MlpTrainer`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MlpTrainer {
    /// Hidden layer widths. Default [64, 32].
    pub hidden: Vec<usize>,
    /// Adam learning rate. Default 0.001.
    pub learning_rate: f64,
    /// Mini-batch size. Default 256.
    pub batch_size: usize,
    /// Epochs at most. Default 40.
    pub max_epochs: usize,
    /// Stop after this many epochs without a better tune loss. Default 4.
    pub patience: usize,
    /// Seed of initialisation and shuffling. Default 42.
    pub seed: u64,
}

impl Default for MlpTrainer {
    fn default() -> Self {
        Self {
            hidden: vec![64, 32],
            learning_rate: 1e-3,
            batch_size: 256,
            max_epochs: 40,
            patience: 4,
            seed: 42,
        }
    }
}

/// One dense layer: `weight` is row-major `[inputs][outputs]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dense {
    pub inputs: usize,
    pub outputs: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// A fitted MLP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedMlp {
    pub standardizer: Standardizer,
    pub layers: Vec<Dense>,
    /// Epoch whose weights were kept, and tune loss per epoch.
    pub best_epoch: usize,
    pub tune_loss: Vec<f64>,
}

#[derive(Module, Debug)]
struct Net {
    layers: Vec<Linear>,
}

impl Net {
    fn new(sizes: &[usize], device: &Device) -> Self {
        Self {
            layers: sizes
                .windows(2)
                .map(|w| LinearConfig::new(w[0], w[1]).init(device))
                .collect(),
        }
    }

    fn forward(&self, mut x: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len() - 1;
        for (i, l) in self.layers.iter().enumerate() {
            x = l.forward(x);
            if i < last {
                x = relu(x);
            }
        }
        x
    }

    fn export(&self) -> Result<Vec<Dense>> {
        self.layers
            .iter()
            .map(|l| {
                let w = l.weight.val();
                let [inputs, outputs] = w.dims();
                let weight = w
                    .into_data()
                    .try_to_vec::<f32>()
                    .map_err(|e| Error::Data(format!("mlp weights: {e:?}")))?;
                let bias = match &l.bias {
                    Some(b) => b
                        .val()
                        .into_data()
                        .try_to_vec::<f32>()
                        .map_err(|e| Error::Data(format!("mlp bias: {e:?}")))?,
                    None => vec![0.0; outputs],
                };
                Ok(Dense {
                    inputs,
                    outputs,
                    weight,
                    bias,
                })
            })
            .collect()
    }
}

/// Mean loss of logits against labels: binary cross-entropy with logits (one output) or
/// softmax cross-entropy (one-hot `target`).
fn loss(logits: Tensor<2>, target: Tensor<2>, outputs: usize) -> Tensor<1> {
    if outputs == 1 {
        // softplus(z) − y·z, computed stably as max(z,0) + ln(1 + e^{−|z|}) − y·z
        let stable = logits.clone().clamp_min(0.0) + logits.clone().abs().neg().exp().log1p();
        (stable - target * logits).mean()
    } else {
        let n = logits.dims()[0] as f64;
        (log_softmax(logits, 1) * target).sum().neg().div_scalar(n)
    }
}

fn batch_tensors(
    t: &Table,
    st: &Standardizer,
    rows: &[usize],
    outputs: usize,
    device: &Device,
) -> (Tensor<2>, Tensor<2>) {
    let mut x = Vec::with_capacity(rows.len() * t.d);
    for &i in rows {
        for j in 0..t.d {
            x.push(st.apply(j, t.x[j * t.n + i]) as f32);
        }
    }
    let mut y = vec![0f32; rows.len() * outputs];
    for (r, &i) in rows.iter().enumerate() {
        if outputs == 1 {
            y[r] = t.y[i] as f32;
        } else if (t.y[i] as usize) < outputs {
            y[r * outputs + t.y[i] as usize] = 1.0;
        }
    }
    (
        Tensor::from_data(TensorData::new(x, [rows.len(), t.d]), device),
        Tensor::from_data(TensorData::new(y, [rows.len(), outputs]), device),
    )
}

impl MlpTrainer {
    /// Fits on `train` rows with early stopping on `tune` rows; `on_epoch(epoch, train
    /// loss, tune loss)` is called after each epoch.
    pub fn fit(
        &self,
        t: &Table,
        train: &[usize],
        tune: &[usize],
        on_epoch: &dyn Fn(usize, f64, f64),
    ) -> Result<FittedMlp> {
        if self.batch_size == 0
            || self.max_epochs == 0
            || self.learning_rate.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
        {
            return Err(Error::Invalid(
                "mlp: batch_size and max_epochs must be ≥ 1 and learning_rate > 0".into(),
            ));
        }
        if self.hidden.contains(&0) {
            return Err(Error::Invalid(
                "mlp: hidden layer widths must be ≥ 1".into(),
            ));
        }
        if tune.is_empty() || train.is_empty() {
            return Err(Error::Data(
                "mlp: needs training rows and validation (tune) rows".into(),
            ));
        }
        let outputs = t.outputs();
        let train: Vec<usize> = train
            .iter()
            .copied()
            .filter(|&i| (t.y[i] as usize) < t.classes.len())
            .collect();
        let st = Standardizer::fit(t, &train);
        let device = Device::default().autodiff();
        device.seed(self.seed);
        let mut sizes = vec![t.d];
        sizes.extend(&self.hidden);
        sizes.push(outputs);
        let mut net = Net::new(&sizes, &device);
        let mut optim = AdamConfig::new().init();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed);
        let mut order = train.clone();

        let eval_device = device.clone();
        let tune_loss_of = |net: &Net| -> Result<f64> {
            let mut total = 0.0;
            for chunk in tune.chunks(8192) {
                let (x, y) = batch_tensors(t, &st, chunk, outputs, &eval_device);
                let l = loss(net.forward(x), y, outputs)
                    .into_data()
                    .try_to_vec::<f32>()
                    .map_err(|e| Error::Data(format!("mlp loss: {e:?}")))?[0];
                total += f64::from(l) * chunk.len() as f64;
            }
            Ok(total / tune.len() as f64)
        };

        let mut best = (f64::INFINITY, 0usize, net.export()?);
        let mut tune_losses = Vec::new();
        for epoch in 1..=self.max_epochs {
            order.shuffle(&mut rng);
            let (mut sum, mut count) = (0.0, 0usize);
            for chunk in order.chunks(self.batch_size) {
                let (x, y) = batch_tensors(t, &st, chunk, outputs, &device);
                let l = loss(net.forward(x), y, outputs);
                let grads = l.backward();
                // Reading the loss every 32 batches keeps the progress honest without a
                // device sync per step.
                if count % 32 == 0
                    && let Ok(v) = l.into_data().try_to_vec::<f32>()
                {
                    sum += f64::from(v[0]);
                }
                count += 1;
                let grads = GradientsParams::from_grads(grads, &net);
                net = optim.step(self.learning_rate, net, grads);
            }
            let tl = tune_loss_of(&net)?;
            if !tl.is_finite() {
                return Err(Error::Data(format!(
                    "mlp: the tune loss became {tl} at epoch {epoch}; lower learning_rate"
                )));
            }
            tune_losses.push(tl);
            on_epoch(epoch, sum / count.div_ceil(32).max(1) as f64, tl);
            if tl < best.0 - 1e-6 {
                best = (tl, epoch, net.export()?);
            } else if epoch - best.1 >= self.patience {
                break;
            }
        }
        Ok(FittedMlp {
            standardizer: st,
            layers: best.2,
            best_epoch: best.1,
            tune_loss: tune_losses,
        })
    }
}

thread_local! {
    static SCRATCH: RefCell<(Vec<f64>, Vec<f64>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

impl FittedMlp {
    /// Probabilities for one raw input row. Uses a per-thread scratch buffer, so after the
    /// first call on a thread it allocates nothing.
    pub fn predict_into(&self, x: &[f64], out: &mut [f64]) {
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            let (a, b) = &mut *s;
            let width = self
                .layers
                .iter()
                .map(|l| l.inputs.max(l.outputs))
                .max()
                .unwrap_or(0);
            if a.len() < width {
                a.resize(width, 0.0);
                b.resize(width, 0.0);
            }
            for (j, v) in x.iter().enumerate() {
                a[j] = self.standardizer.apply(j, *v);
            }
            let last = self.layers.len() - 1;
            for (li, l) in self.layers.iter().enumerate() {
                let (src, dst) = if li % 2 == 0 {
                    (&*a, &mut *b)
                } else {
                    (&*b, &mut *a)
                };
                for (d, b) in dst.iter_mut().zip(&l.bias) {
                    *d = f64::from(*b);
                }
                for (i, &v) in src.iter().take(l.inputs).enumerate() {
                    if v != 0.0 {
                        let row = &l.weight[i * l.outputs..(i + 1) * l.outputs];
                        for (d, w) in dst.iter_mut().zip(row) {
                            *d += v * f64::from(*w);
                        }
                    }
                }
                if li < last {
                    for o in dst.iter_mut().take(l.outputs) {
                        *o = o.max(0.0);
                    }
                }
            }
            let res = if last.is_multiple_of(2) { &*b } else { &*a };
            out.copy_from_slice(&res[..out.len()]);
        });
        finish(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain forward pass used for scoring equals burn's own forward pass.
    #[test]
    fn exported_forward_equals_burn() {
        let device = Device::default();
        device.seed(3);
        for outputs in [1usize, 3] {
            let net = Net::new(&[5, 8, 4, outputs], &device);
            let fitted = FittedMlp {
                standardizer: Standardizer {
                    mean: vec![0.0; 5],
                    scale: vec![1.0; 5],
                },
                layers: net.export().unwrap(),
                best_epoch: 0,
                tune_loss: Vec::new(),
            };
            let rows: Vec<[f32; 5]> = vec![[0.5, -1.0, 2.0, 0.0, 0.3], [-0.2, 0.1, -2.5, 1.5, 0.0]];
            let flat: Vec<f32> = rows.iter().flatten().copied().collect();
            let logits = net
                .forward(Tensor::from_data(TensorData::new(flat, [2, 5]), &device))
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            for (r, row) in rows.iter().enumerate() {
                let x: Vec<f64> = row.iter().map(|v| f64::from(*v)).collect();
                let mut out = vec![0.0; outputs];
                fitted.predict_into(&x, &mut out);
                let mut want: Vec<f64> = logits[r * outputs..(r + 1) * outputs]
                    .iter()
                    .map(|v| f64::from(*v))
                    .collect();
                finish(&mut want);
                for (a, b) in out.iter().zip(&want) {
                    assert!((a - b).abs() < 1e-5, "{out:?} vs {want:?}");
                }
            }
        }
    }
}
