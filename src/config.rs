//! Board/daemon configuration: one TOML file per board (`boards/*.toml`).
//!
//! Every table is optional; what is missing takes the embedded default, which
//! is the demo (bundled sample frames, committed model, stdout sink). Unknown
//! keys are errors, so a typo never silently falls back to a default. Errors
//! name the file, the key and the fix.

use crate::decide::DecideConfig;
use crate::sink::archive::ArchiveConfig;
use crate::sink::gpio::GpioConfig;
use crate::sink::mqtt::MqttConfig;
use crate::sink::stdout::StdoutConfig;
use crate::source::SourceConfig;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

pub mod bounds;

#[derive(Clone, Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub device: DeviceConfig,
    #[serde(default)]
    pub source: SourceConfig,
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default)]
    pub pipeline: PipelineConfig,
    #[serde(default)]
    pub decide: DecideConfig,
    #[serde(default)]
    pub sinks: SinksConfig,
    /// `[dashboard]`: absent in a file = no dashboard; the embedded demo serves one.
    #[serde(default)]
    pub dashboard: Option<crate::dashboard::DashboardConfig>,
    /// Directory relative paths are resolved against (the config file's
    /// directory; the working directory for the embedded default).
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The file this came from, for messages; None for the embedded default.
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Device id in MQTT topics (`edgeseg/<name>/...`): letters, digits, `-`, `_`, `.`.
    #[serde(default = "default_device_name")]
    pub name: String,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        DeviceConfig { name: default_device_name() }
    }
}

fn default_device_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && valid_device_name(s))
        .unwrap_or_else(|| "edgeseg".to_string())
}

fn valid_device_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// ONNX file, relative to the config file.
    #[serde(default = "default_model_path")]
    pub path: PathBuf,
    /// Threads for tract's matrix products (1..=256); set to the board's big cores.
    #[serde(default = "default_threads")]
    pub threads: u16,
    /// Class names, background first (only for models without edgeseg/ultralytics metadata).
    #[serde(default)]
    pub classes: Option<Vec<String>>,
    /// Activation applied to a semantic output: "softmax", "sigmoid" or "none"
    /// (only for models whose graph and metadata do not say; see `--activation`).
    #[serde(default)]
    pub activation: Option<String>,
    /// A one-channel model's foreground threshold on the probability (0..1 exclusive).
    #[serde(default)]
    pub binary_threshold: Option<f32>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig { path: default_model_path(), threads: default_threads(), classes: None, activation: None, binary_threshold: None }
    }
}

impl ModelConfig {
    /// What this section overrides in the model's own description.
    pub fn overrides(&self) -> Result<crate::model::MetaOverrides> {
        let activation = self
            .activation
            .as_deref()
            .map(|a| a.parse().with_context(|| format!("key model.activation = {a:?}; fix: use \"softmax\", \"sigmoid\" or \"none\"")))
            .transpose()?;
        let binary_threshold = self
            .binary_threshold
            .map(|t| crate::model::meta::check_threshold(t).with_context(|| format!("key model.binary_threshold = {t}; fix: use a value strictly between 0 and 1, e.g. 0.5")))
            .transpose()?;
        Ok(crate::model::MetaOverrides { classes: self.classes.clone(), activation, binary_threshold, ..Default::default() })
    }
}

fn default_model_path() -> PathBuf {
    PathBuf::from("models/unet_defects.onnx")
}
fn default_threads() -> u16 {
    1
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// `continuous`: judge the newest frame whenever inference is free.
    /// `trigger`: judge one frame per trigger edge (GPIO trigger line).
    #[serde(default)]
    pub mode: Mode,
    /// Seconds between `stats` messages.
    #[serde(default = "default_stats_interval")]
    pub stats_interval_s: f64,
    /// Stop after this many judged frames (0 = run until the source ends or SIGTERM).
    #[serde(default)]
    pub max_frames: u64,
    /// Draw mask overlays (needed by the archive and the dashboard stream).
    #[serde(default = "default_true")]
    pub overlay: bool,
    /// Seconds without a judged frame (while the source is expected to deliver) after which
    /// the pipeline counts as stalled: the systemd watchdog is no longer fed, so systemd restarts it.
    #[serde(default = "default_stall_timeout")]
    pub stall_timeout_s: f64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            mode: Mode::Continuous,
            stats_interval_s: default_stats_interval(),
            max_frames: 0,
            overlay: true,
            stall_timeout_s: default_stall_timeout(),
        }
    }
}

fn default_stats_interval() -> f64 {
    5.0
}
fn default_stall_timeout() -> f64 {
    30.0
}
fn default_true() -> bool {
    true
}

#[derive(Clone, Copy, Debug, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Continuous,
    Trigger,
}

#[derive(Clone, Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SinksConfig {
    pub stdout: Option<StdoutConfig>,
    pub mqtt: Option<MqttConfig>,
    pub gpio: Option<GpioConfig>,
    pub archive: Option<ArchiveConfig>,
}

impl Config {
    /// The embedded default: the demo.
    pub fn embedded_default() -> Config {
        let mut c = Config { base_dir: PathBuf::from("."), ..Config::default() };
        c.sinks.stdout = Some(StdoutConfig::default());
        c.dashboard = Some(crate::dashboard::DashboardConfig::default());
        c
    }

    /// Read and check a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}; fix: pass an existing file, e.g. --config boards/desktop.toml", path.display()))?;
        let mut config = Self::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        config.base_dir = path.parent().map(Path::to_path_buf).filter(|p| !p.as_os_str().is_empty()).unwrap_or_else(|| PathBuf::from("."));
        config.file = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parse TOML text; errors say which key and how to fix it.
    pub fn parse(text: &str) -> Result<Config> {
        let config: Config = toml::from_str(text).map_err(|e| {
            // toml's message already carries line, column and the offending key.
            anyhow::anyhow!("{}fix: see boards/README.md for every key and its allowed values", e)
        })?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<()> {
        if !valid_device_name(&self.device.name) {
            bail!(
                "key device.name = {:?} is not a valid MQTT topic level; fix: use 1-64 letters, digits, '-', '_' or '.'",
                self.device.name
            );
        }
        if self.model.threads == 0 {
            bail!("key model.threads = 0; fix: use 1 or more (the board's big cores)");
        }
        self.model.overrides()?;
        bounds::check(self)?;
        if self.pipeline.mode == Mode::Trigger && self.sinks.gpio.as_ref().is_none_or(|g| g.trigger_line.is_none()) {
            bail!("key pipeline.mode = \"trigger\" but no trigger input is configured; fix: set sinks.gpio.trigger_line, or use mode = \"continuous\"");
        }
        self.decide.check()?;
        if let Some(gpio) = &self.sinks.gpio {
            gpio.check()?;
        }
        if let Some(mqtt) = &self.sinks.mqtt {
            mqtt.check(&self.device.name)?;
        }
        if let Some(d) = &self.dashboard {
            d.check()?;
        }
        if let Some(a) = &self.sinks.archive {
            a.check()?;
        }
        Ok(())
    }

    /// Where a path from this config points.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        crate::source::resolve_path(&self.base_dir, p)
    }

    /// The model file, checked to exist (a missing model names the key and the fix).
    pub fn model_path(&self) -> Result<PathBuf> {
        let p = self.resolve(&self.model.path);
        if p.is_file() {
            return Ok(p);
        }
        // An installed package keeps models beside the binary: bin/../models in the
        // tarball of scripts/package.sh, or ../share/edgeseg/models.
        if self.file.is_none() {
            if let Some(found) = beside_exe(&self.model.path) {
                return Ok(found);
            }
        }
        bail!(
            "{}key model.path: {} does not exist; fix: point it at an ONNX file (paths are relative to the config file)",
            self.file.as_ref().map(|f| format!("{}: ", f.display())).unwrap_or_default(),
            p.display()
        )
    }
}

fn beside_exe(rel: &Path) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    [dir.join(rel), dir.join("..").join(rel), dir.join("../share/edgeseg").join(rel), dir.join("../..").join(rel)].into_iter().find(|p| p.is_file())
}
