//! Teardown: a stack of undo steps, pushed as resources are acquired and run
//! in reverse on every exit path. Each step is idempotent; a failing step is
//! reported and the rest still run.

use anyhow::Result;

type Undo = Box<dyn FnOnce() -> Result<()>>;

#[derive(Default)]
pub struct Teardown {
    steps: Vec<(&'static str, Undo)>,
}

impl Teardown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Remember how to undo the step just done.
    pub fn push(&mut self, name: &'static str, undo: impl FnOnce() -> Result<()> + 'static) {
        self.steps.push((name, Box::new(undo)));
    }

    /// Run every undo step, last first. Returns the failures, as
    /// "step: reason" lines.
    pub fn run(&mut self) -> Vec<String> {
        let mut failures = Vec::new();
        while let Some((name, undo)) = self.steps.pop() {
            if let Err(e) = undo() {
                failures.push(format!("undoing {name}: {e:#}"));
            }
            if let Err(e) = crate::fault::step(&format!("teardown:{name}")) {
                failures.push(format!("undoing {name}: {e:#}"));
            }
        }
        failures
    }
}

impl Drop for Teardown {
    fn drop(&mut self) {
        for f in self.run() {
            eprintln!("fwrun: warning: {f}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    #[test]
    fn reverse_order_and_failures_do_not_stop_the_rest() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut t = Teardown::new();
        for (name, fails) in [("a", false), ("b", true), ("c", false)] {
            let log = log.clone();
            t.push(name, move || {
                log.borrow_mut().push(name);
                if fails {
                    anyhow::bail!("{name} broke")
                }
                Ok(())
            });
        }
        let failures = t.run();
        assert_eq!(*log.borrow(), ["c", "b", "a"]);
        assert_eq!(failures, ["undoing b: b broke"]);
        assert!(t.run().is_empty(), "a second run does nothing");
    }
}
