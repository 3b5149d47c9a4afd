//! Where training runs: a real GPU through wgpu when built with the `gpu` feature and one
//! exists, otherwise the CPU (`flex`). Chosen once at start-up.

use burn::tensor::Device;

use super::LearnError;
use crate::config::DevicePref;

/// The device models train and score on. Cheap to clone, `Send + Sync`.
#[derive(Clone, Debug)]
pub struct Compute {
    pub(crate) device: Device,
    gpu: bool,
    name: String,
}

impl Compute {
    /// The CPU (`flex`).
    pub fn cpu() -> Compute {
        Compute {
            device: Device::flex(),
            gpu: false,
            name: "cpu (flex)".to_string(),
        }
    }

    /// Chooses the device once. Returns it and a line for the log saying what was chosen
    /// and why. A software rasterizer (llvmpipe, a wgpu adapter of type Cpu) is never taken
    /// for a GPU. `Auto` without a usable GPU takes the CPU; `Gpu` without one is an error.
    pub fn select(pref: DevicePref) -> Result<(Compute, String), LearnError> {
        match pref {
            DevicePref::Cpu => Ok((
                Compute::cpu(),
                "training on the CPU (flex), as configured".into(),
            )),
            DevicePref::Auto | DevicePref::Gpu => match probe_gpu() {
                Ok(c) => {
                    let line = format!("training on the GPU: {}", c.name);
                    Ok((c, line))
                }
                Err(why) if pref == DevicePref::Auto => Ok((
                    Compute::cpu(),
                    format!("training on the CPU (flex): no usable GPU ({why})"),
                )),
                Err(why) => Err(LearnError::NoGpu(why)),
            },
        }
    }

    pub fn is_gpu(&self) -> bool {
        self.gpu
    }

    /// A short name for logs and the `models.device` column.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Probes a discrete, then an integrated GPU. A Cpu-type adapter (llvmpipe) is never asked
/// for, so it can never be chosen.
#[cfg(feature = "gpu")]
fn probe_gpu() -> Result<Compute, String> {
    use burn::tensor::DeviceKind;
    let mut errors = Vec::new();
    for (kind, label) in [
        (DeviceKind::DiscreteGpu(0), "discrete GPU"),
        (DeviceKind::IntegratedGpu(0), "integrated GPU"),
    ] {
        match Device::wgpu_options().device_kind(kind).init() {
            Ok(device) => {
                return Ok(Compute {
                    device,
                    gpu: true,
                    name: format!("wgpu {label}"),
                });
            }
            Err(e) => errors.push(format!("{label}: {e}")),
        }
    }
    Err(errors.join("; "))
}

#[cfg(not(feature = "gpu"))]
fn probe_gpu() -> Result<Compute, String> {
    Err("built without the `gpu` feature".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_when_asked_and_never_a_missing_gpu() {
        let (c, line) = Compute::select(DevicePref::Cpu).unwrap();
        assert!(!c.is_gpu());
        assert!(line.contains("CPU"));
        #[cfg(not(feature = "gpu"))]
        {
            let (c, line) = Compute::select(DevicePref::Auto).unwrap();
            assert!(!c.is_gpu());
            assert!(line.contains("no usable GPU"), "{line}");
            let err = Compute::select(DevicePref::Gpu).unwrap_err();
            assert_eq!(
                err.to_string(),
                "No usable GPU was found (built without the `gpu` feature); set learn.device to \"auto\" or \"cpu\"."
            );
        }
    }

    #[test]
    fn compute_is_send_and_sync() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Compute>();
    }
}
