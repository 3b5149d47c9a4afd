//! Where training runs: a real GPU through wgpu when built with the `gpu` feature and one
//! exists, otherwise the CPU (`flex`); a software wgpu adapter only when asked for by name.
//! Chosen once at start-up.

use burn::tensor::Device;

use super::LearnError;
use crate::config::DevicePref;

/// What kind of device a [`Compute`] trains on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComputeKind {
    /// The CPU, through burn's `flex` backend.
    Cpu,
    /// A real (discrete or integrated) GPU through wgpu.
    Gpu,
    /// A software wgpu adapter (Mesa's lavapipe or llvmpipe): the GPU code path run on the
    /// CPU, about 200 times slower than `flex`. Only `learn.device = "wgpu-software"` takes it.
    SoftwareAdapter,
}

/// The device models train and score on. Cheap to clone, `Send + Sync`.
#[derive(Clone, Debug)]
pub struct Compute {
    pub(crate) device: Device,
    kind: ComputeKind,
    name: String,
    /// Trainings with fewer labelled tracks than this run on the CPU instead (0: never).
    cpu_below: usize,
}

impl Compute {
    /// The CPU (`flex`).
    pub fn cpu() -> Compute {
        Compute {
            device: Device::flex(),
            kind: ComputeKind::Cpu,
            name: CPU_NAME.to_string(),
            cpu_below: 0,
        }
    }

    /// Chooses the device once. Returns it and a line for the log saying what was chosen
    /// and why.
    ///
    /// A software adapter (lavapipe, llvmpipe: a wgpu adapter of type Cpu) is never taken for
    /// a GPU: `Auto` without a real GPU takes the CPU, and `Gpu` without one is an error.
    /// `WgpuSoftware` takes the software adapter on purpose. With `Auto` and a real GPU,
    /// trainings on fewer than `gpu_min_labels` labelled tracks run on the CPU, where a small
    /// model trains faster than a GPU can launch its kernels.
    pub fn select(
        pref: DevicePref,
        gpu_min_labels: usize,
    ) -> Result<(Compute, String), LearnError> {
        match pref {
            DevicePref::Cpu => Ok((
                Compute::cpu(),
                "training on the CPU (flex), as configured".into(),
            )),
            DevicePref::WgpuSoftware => match software_adapter() {
                Ok(c) => {
                    let line = format!(
                        "training on {} (the GPU code path on the CPU, as configured; far slower than flex)",
                        c.name
                    );
                    Ok((c, line))
                }
                Err(why) => Err(LearnError::NoSoftwareAdapter(why)),
            },
            DevicePref::Auto | DevicePref::Gpu => match real_gpu() {
                Ok(mut c) if pref == DevicePref::Auto && gpu_min_labels > 0 => {
                    c.cpu_below = gpu_min_labels;
                    let line = format!(
                        "training on the GPU ({}) from {gpu_min_labels} labelled tracks, smaller trainings on the CPU (flex)",
                        c.name
                    );
                    Ok((c, line))
                }
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

    pub fn kind(&self) -> ComputeKind {
        self.kind
    }

    /// Whether training runs on a real GPU (never true for a software adapter).
    pub fn is_gpu(&self) -> bool {
        self.kind == ComputeKind::Gpu
    }

    /// A short name for logs and the `models.device` column.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The device a training on `labels` labelled tracks runs on, and its name.
    pub(crate) fn for_training(&self, labels: usize) -> (Device, &str) {
        if labels < self.cpu_below {
            (Device::flex(), CPU_NAME)
        } else {
            (self.device.clone(), &self.name)
        }
    }

    /// Whether tensors on this device may be fed from several threads at once (the CPU), or
    /// are best fed from one thread (a wgpu queue).
    pub(crate) fn parallel(&self) -> bool {
        self.kind == ComputeKind::Cpu
    }
}

/// The name of the CPU device in logs, bench rows and the `models.device` column.
pub(crate) const CPU_NAME: &str = "cpu (flex)";

/// A real GPU: a discrete, then an integrated one. A Cpu-type adapter is never asked for here,
/// so it can never be chosen. Probed once per process (wgpu registers a runtime per kind).
#[cfg(feature = "gpu")]
fn real_gpu() -> Result<Compute, String> {
    use burn::tensor::DeviceKind as Kind;
    use std::sync::OnceLock;
    static GPU: OnceLock<Result<Compute, String>> = OnceLock::new();
    GPU.get_or_init(|| {
        let mut errors = Vec::new();
        for kind in [Kind::DiscreteGpu(0), Kind::IntegratedGpu(0)] {
            match init_wgpu(kind, ComputeKind::Gpu) {
                Ok(c) => return Ok(c),
                Err(e) => errors.push(e),
            }
        }
        Err(errors.join("; "))
    })
    .clone()
}

/// A software wgpu adapter (wgpu's `Cpu` device type). Initialised once per process.
#[cfg(feature = "gpu")]
fn software_adapter() -> Result<Compute, String> {
    use std::sync::OnceLock;
    static SOFTWARE: OnceLock<Result<Compute, String>> = OnceLock::new();
    SOFTWARE
        .get_or_init(|| init_wgpu(burn::tensor::DeviceKind::Cpu, ComputeKind::SoftwareAdapter))
        .clone()
}

/// Acquires the first wgpu adapter of `selector`'s type; its name comes from the adapter.
#[cfg(feature = "gpu")]
fn init_wgpu(selector: burn::tensor::DeviceKind, kind: ComputeKind) -> Result<Compute, String> {
    let label = match &selector {
        burn::tensor::DeviceKind::DiscreteGpu(_) => "discrete GPU",
        burn::tensor::DeviceKind::IntegratedGpu(_) => "integrated GPU",
        _ => "software adapter",
    };
    match Device::wgpu_options()
        .device_kind(selector)
        .init_with_setup()
    {
        Ok((device, setup)) => {
            let info = setup.adapter.get_info();
            Ok(Compute {
                device,
                kind,
                name: format!("wgpu {label}: {} ({:?})", info.name, info.backend),
                cpu_below: 0,
            })
        }
        Err(e) => Err(format!("{label}: {e}")),
    }
}

#[cfg(not(feature = "gpu"))]
fn real_gpu() -> Result<Compute, String> {
    Err("built without the `gpu` feature".into())
}

#[cfg(not(feature = "gpu"))]
fn software_adapter() -> Result<Compute, String> {
    Err("built without the `gpu` feature".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_when_asked_and_never_a_missing_gpu() {
        let (c, line) = Compute::select(DevicePref::Cpu, 2000).unwrap();
        assert!(!c.is_gpu());
        assert_eq!(c.kind(), ComputeKind::Cpu);
        assert!(line.contains("CPU"));
        #[cfg(not(feature = "gpu"))]
        {
            let (c, line) = Compute::select(DevicePref::Auto, 2000).unwrap();
            assert!(!c.is_gpu());
            assert!(line.contains("no usable GPU"), "{line}");
            let err = Compute::select(DevicePref::Gpu, 2000).unwrap_err();
            assert_eq!(
                err.to_string(),
                "No usable GPU was found (built without the `gpu` feature); set learn.device to \"auto\" or \"cpu\"."
            );
            let err = Compute::select(DevicePref::WgpuSoftware, 2000).unwrap_err();
            assert_eq!(
                err.to_string(),
                "learn.device = \"wgpu-software\" found no software wgpu adapter (built without the `gpu` feature); install a Vulkan driver such as Mesa's lavapipe, or set learn.device to \"auto\" or \"cpu\"."
            );
        }
    }

    #[test]
    fn small_trainings_go_to_the_cpu_only_below_the_threshold() {
        let mut c = Compute::cpu();
        c.kind = ComputeKind::Gpu;
        c.name = "a gpu".into();
        c.cpu_below = 100;
        assert_eq!(c.for_training(99).1, CPU_NAME);
        assert_eq!(c.for_training(100).1, "a gpu");
        c.cpu_below = 0;
        assert_eq!(c.for_training(1).1, "a gpu");
    }

    #[test]
    fn compute_is_send_and_sync() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Compute>();
    }
}
