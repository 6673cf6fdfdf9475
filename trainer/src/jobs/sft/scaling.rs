//! Dynamic loss scaling for f16 training, as PyTorch's `GradScaler` does it:
//! f16's smallest numbers are far larger than bf16's, so small gradients
//! would round to zero; the loss is multiplied by a large scale before the
//! backward pass and the gradients divided by it before the update. A step
//! whose gradients overflowed is skipped and the scale halved; after
//! [`GROWTH_INTERVAL`] good steps in a row it doubles.

/// PyTorch's defaults.
pub const INITIAL_SCALE: f64 = 65536.0;
pub const GROWTH_INTERVAL: usize = 2000;

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossScaler {
    pub scale: f64,
    /// Steps since the last overflow or growth.
    pub good_steps: usize,
}

impl Default for LossScaler {
    fn default() -> Self {
        LossScaler::starting_at(INITIAL_SCALE)
    }
}

impl LossScaler {
    pub fn starting_at(scale: f64) -> LossScaler {
        LossScaler {
            scale,
            good_steps: 0,
        }
    }

    /// After a step: an overflow halves the scale, enough good steps in a
    /// row double it.
    pub fn update(&mut self, overflowed: bool) {
        if overflowed {
            self.scale = (self.scale / 2.0).max(1.0);
            self.good_steps = 0;
        } else {
            self.good_steps += 1;
            if self.good_steps == GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflows_halve_and_good_runs_double() {
        let mut s = LossScaler::default();
        s.update(true);
        s.update(true);
        assert_eq!(s.scale, INITIAL_SCALE / 4.0);
        for _ in 0..GROWTH_INTERVAL - 1 {
            s.update(false);
        }
        assert_eq!(s.scale, INITIAL_SCALE / 4.0);
        s.update(false);
        assert_eq!(s.scale, INITIAL_SCALE / 2.0);
        assert_eq!(s.good_steps, 0);
        // An overflow in a run starts the count again.
        for _ in 0..GROWTH_INTERVAL - 1 {
            s.update(false);
        }
        s.update(true);
        s.update(false);
        assert_eq!((s.scale, s.good_steps), (INITIAL_SCALE / 4.0, 1));
        // Never below 1.
        for _ in 0..100 {
            s.update(true);
        }
        assert_eq!(s.scale, 1.0);
    }
}
