//! A list that grows in fixed chunks: what a DAT keeps per entry while it
//! loads. A `Vec` doubles by moving to a new allocation; the old one is
//! garbage that an allocator may keep resident for a while (mimalloc keeps
//! freed memory until it purges it), so a DAT's arrays cost up to twice
//! their size at the peak of loading. Chunks are allocated once, at their
//! full capacity, and never move.

/// Entries a chunk holds: 4096 SHA-1s are 80 KiB.
const CHUNK: usize = 4096;

#[derive(Debug, Clone)]
pub struct Column<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Column<T> {
    fn default() -> Column<T> {
        Column {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T: Copy> Column<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, value: T) {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < CHUNK => chunk.push(value),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(value);
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
    }

    pub fn get(&self, at: usize) -> Option<T> {
        self.chunks.get(at / CHUNK)?.get(at % CHUNK).copied()
    }

    /// The first position whose value `is_before` says is not before the
    /// one sought, the values being sorted (as `slice::partition_point`).
    pub fn partition_point(&self, mut is_before: impl FnMut(T) -> bool) -> usize {
        let (mut low, mut high) = (0, self.len);
        while low < high {
            let middle = low + (high - low) / 2;
            match self.get(middle) {
                Some(value) if is_before(value) => low = middle + 1,
                _ => high = middle,
            }
        }
        low
    }

    /// Gives back the room the last chunk kept to grow (once the last
    /// entry is added).
    pub fn shrink_to_fit(&mut self) {
        if let Some(last) = self.chunks.last_mut() {
            last.shrink_to_fit();
        }
        self.chunks.shrink_to_fit();
    }

    /// The bytes it holds on the heap.
    pub fn heap_bytes(&self) -> usize {
        let chunks: usize = self.chunks.iter().map(Vec::capacity).sum();
        chunks * size_of::<T>() + self.chunks.capacity() * size_of::<Vec<T>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn values_read_back_and_bisect(values in proptest::collection::vec(0u32..1000, 0..10_000)) {
            let mut sorted = values.clone();
            sorted.sort_unstable();
            let mut column = Column::default();
            for &value in &sorted {
                column.push(value);
            }
            column.shrink_to_fit();
            prop_assert_eq!(column.len(), sorted.len());
            for (at, &value) in sorted.iter().enumerate() {
                prop_assert_eq!(column.get(at), Some(value));
            }
            prop_assert_eq!(column.get(sorted.len()), None);
            for probe in [0, 1, 500, 999, 1000] {
                prop_assert_eq!(
                    column.partition_point(|v| v < probe),
                    sorted.partition_point(|&v| v < probe)
                );
            }
        }
    }
}
