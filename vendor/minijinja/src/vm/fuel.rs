use crate::compiler::instructions::Instruction;
use crate::error::{Error, ErrorKind};

/// Helper for tracking fuel consumption
pub struct FuelTracker {
    // The initial fuel level.
    initial: u64,
    remaining: isize,
    // nepho patch: a wall-clock budget, checked every few instructions (an instruction can
    // work on megabytes, so a step budget alone does not bound the time a render takes).
    deadline: Option<std::time::Instant>,
    until_clock_check: u32,
}

/// nepho patch: instructions between two looks at the clock.
const CLOCK_CHECK_EVERY: u32 = 16;

impl FuelTracker {
    /// Creates a new fuel tracker.
    ///
    pub fn new(fuel: u64, time_budget: Option<std::time::Duration>) -> FuelTracker {
        FuelTracker {
            initial: fuel,
            remaining: fuel as isize,
            deadline: time_budget.and_then(|t| std::time::Instant::now().checked_add(t)),
            until_clock_check: CLOCK_CHECK_EVERY,
        }
    }

    /// Tracks an instruction.  If it runs out of fuel an error is returned.
    pub fn track(&mut self, instr: &Instruction) -> Result<(), Error> {
        let fuel_to_consume = fuel_for_instruction(instr);
        if fuel_to_consume != 0 {
            self.remaining -= fuel_to_consume;
            if self.remaining <= 0 {
                return Err(Error::from(ErrorKind::OutOfFuel));
            }
            if let Some(deadline) = self.deadline {
                self.until_clock_check -= 1;
                if self.until_clock_check == 0 {
                    self.until_clock_check = CLOCK_CHECK_EVERY;
                    if std::time::Instant::now() >= deadline {
                        return Err(Error::new(ErrorKind::OutOfFuel, "time budget exceeded"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Returns the remaining fuel.
    pub fn remaining(&self) -> u64 {
        self.remaining as _
    }

    /// Returns the consumed fuel.
    pub fn consumed(&self) -> u64 {
        self.initial.saturating_sub(self.remaining())
    }
}

/// How much fuel does an instruction consume?
fn fuel_for_instruction(instruction: &Instruction) -> isize {
    match instruction {
        Instruction::BeginCapture(_)
        | Instruction::PushLoop(_)
        | Instruction::PushDidNotIterate
        | Instruction::PushWith
        | Instruction::PopFrame
        | Instruction::PopLoopFrame
        | Instruction::DupTop
        | Instruction::DiscardTop
        | Instruction::PushAutoEscape
        | Instruction::PopAutoEscape => 0,
        #[cfg(feature = "multi_template")]
        Instruction::ExportLocals => 0,
        #[cfg(feature = "macros")]
        Instruction::LoadBlocks | Instruction::BuildMacro(..) | Instruction::Return => 0,
        _ => 1,
    }
}
