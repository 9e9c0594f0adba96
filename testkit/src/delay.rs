//! A planted slowdown, for proving that speed regressions are caught: a
//! [`Delayed`] backend waits after each call of one op (`mat_mul:20`), and
//! nothing else changes. The CLI plants one in every backend it opens when
//! `GLMHAL_INJECT_DELAY=OP:MILLISECONDS` asks for it, and says so on stderr.

use std::ops::Range;
use std::str::FromStr;
use std::time::Duration;

use glmhal_hal::{
    Backend, Buffer, DeviceId, DeviceInfo, HalError, Op, OpCall, OpContract, OpKind, Precision,
    Result, SharedBytes, Support, TensorDesc, TensorRef,
};

/// The variable the CLI reads a delay from.
pub const DELAY_VARIABLE: &str = "GLMHAL_INJECT_DELAY";

/// Which op waits and how long.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Delay {
    /// The op that is slowed down.
    pub op: OpKind,
    /// Added after each call of it.
    pub delay: Duration,
}

impl FromStr for Delay {
    type Err = HalError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            HalError::invalid(
                DELAY_VARIABLE,
                format!("expected OP:MILLISECONDS such as mat_mul:20, got `{s}`"),
            )
        };
        let (op, ms) = s.split_once(':').ok_or_else(bad)?;
        let ms: f64 = ms.trim().parse().map_err(|_| bad())?;
        if !(ms.is_finite() && ms >= 0.0) {
            return Err(bad());
        }
        Ok(Delay {
            op: op.trim().parse()?,
            delay: Duration::from_secs_f64(ms / 1000.0),
        })
    }
}

/// A backend that waits after every call of one op, otherwise the inner one.
pub struct Delayed {
    inner: Box<dyn Backend>,
    delay: Delay,
}

impl Delayed {
    /// Wraps `inner`.
    pub fn new(inner: Box<dyn Backend>, delay: Delay) -> Self {
        Delayed { inner, delay }
    }

    fn pause(&self, op: &Op) {
        if op.kind() == self.delay.op {
            std::thread::sleep(self.delay.delay);
        }
    }
}

impl Backend for Delayed {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn info(&self) -> &DeviceInfo {
        self.inner.info()
    }
    fn device_id(&self) -> DeviceId {
        self.inner.device_id()
    }
    fn alloc(&self, bytes: usize) -> Result<Buffer> {
        self.inner.alloc(bytes)
    }
    fn upload(&self, dst: &Buffer, offset: usize, data: &[u8]) -> Result<()> {
        self.inner.upload(dst, offset, data)
    }
    fn download(&self, src: &Buffer, offset: usize, out: &mut [u8]) -> Result<()> {
        self.inner.download(src, offset, out)
    }
    fn contract(&self) -> &'static dyn OpContract {
        self.inner.contract()
    }
    fn supports_valid(&self, op: &Op, inputs: &[TensorDesc], outputs: &[TensorDesc]) -> Support {
        self.inner.supports(op, inputs, outputs)
    }
    fn precision(&self, op: &Op, inputs: &[TensorDesc], outputs: &[TensorDesc]) -> Precision {
        self.inner.precision(op, inputs, outputs)
    }
    unsafe fn execute_valid(
        &self,
        op: &Op,
        inputs: &[TensorRef<'_>],
        outputs: &[TensorRef<'_>],
    ) -> Result<()> {
        self.inner.execute(op, inputs, outputs)?;
        self.pause(op);
        Ok(())
    }
    unsafe fn execute_valid_step(&self, calls: &[OpCall<'_>]) -> Result<()> {
        self.inner.execute_step(calls)?;
        for call in calls {
            self.pause(&call.op);
        }
        Ok(())
    }
    fn synchronize(&self) -> Result<()> {
        self.inner.synchronize()
    }
    fn prepare_weight(&self, desc: &TensorDesc, bytes: &[u8]) -> Result<Buffer> {
        self.inner.prepare_weight(desc, bytes)
    }
    fn prepare_weight_shared(
        &self,
        desc: &TensorDesc,
        bytes: SharedBytes,
        range: Range<usize>,
    ) -> Result<Buffer> {
        self.inner.prepare_weight_shared(desc, bytes, range)
    }
    fn upload_new(&self, data: &[u8]) -> Result<Buffer> {
        self.inner.upload_new(data)
    }
    fn counters(&self) -> Option<glmhal_hal::WorkCounters> {
        self.inner.counters()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_op_and_milliseconds() {
        let d: Delay = "mat_mul:20".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.op, OpKind::MatMul);
        assert_eq!(d.delay, Duration::from_millis(20));
        assert!("mat_mul".parse::<Delay>().is_err());
        assert!("nothing:5".parse::<Delay>().is_err());
        assert!("rope:-1".parse::<Delay>().is_err());
    }
}
