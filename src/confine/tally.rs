//! A bounded count of what the firmware was refused (calls fwrun answered,
//! AppArmor denials): each kind once, with how often it came, in order of
//! first appearance. A firmware that repeats a refused call for hours costs
//! fwrun no memory per repeat; past [`MAX_KINDS`] kinds, new ones are only
//! counted.

/// How many distinct kinds are kept.
pub const MAX_KINDS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally<T> {
    kinds: Vec<(T, usize)>,
    total: usize,
}

impl<T> Default for Tally<T> {
    fn default() -> Self {
        Tally {
            kinds: Vec::new(),
            total: 0,
        }
    }
}

impl<T: PartialEq> Tally<T> {
    /// Count `n` more of `what`.
    pub fn add_n(&mut self, what: T, n: usize) {
        self.total += n;
        if let Some((_, count)) = self.kinds.iter_mut().find(|(k, _)| *k == what) {
            *count += n;
        } else if self.kinds.len() < MAX_KINDS {
            self.kinds.push((what, n));
        }
    }

    pub fn add(&mut self, what: T) {
        self.add_n(what, 1);
    }

    /// Add another tally's counts to this one.
    pub fn merge(&mut self, other: Tally<T>) {
        let kept: usize = other.kinds.iter().map(|(_, n)| n).sum();
        for (what, n) in other.kinds {
            self.add_n(what, n);
        }
        self.total += other.total - kept;
    }

    /// How many there were in all.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Each kind kept, with its count, in order of first appearance.
    pub fn kinds(&self) -> &[(T, usize)] {
        &self.kinds
    }

    /// How many were of kinds past [`MAX_KINDS`], counted but not kept.
    pub fn untold(&self) -> usize {
        self.total - self.kinds.iter().map(|(_, n)| n).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_counted_not_kept() {
        let mut t = Tally::default();
        for _ in 0..10_000 {
            t.add("mount proc at /mnt");
        }
        t.add("umount2 /proc/sys");
        assert_eq!(t.total(), 10_001);
        assert_eq!(
            t.kinds(),
            &[("mount proc at /mnt", 10_000), ("umount2 /proc/sys", 1)]
        );
        assert_eq!(t.untold(), 0);
    }

    #[test]
    fn kinds_are_bounded() {
        let mut t = Tally::default();
        for i in 0..MAX_KINDS + 10 {
            t.add(i);
            t.add(i);
        }
        assert_eq!(t.kinds().len(), MAX_KINDS);
        assert_eq!(t.total(), 2 * (MAX_KINDS + 10));
        assert_eq!(t.untold(), 20);
        let mut all = Tally::default();
        all.add(0);
        all.merge(t);
        assert_eq!(all.total(), 2 * (MAX_KINDS + 10) + 1);
        assert_eq!(all.kinds()[0], (0, 3));
        assert_eq!(all.untold(), 20);
    }
}
