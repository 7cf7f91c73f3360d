//! The cache of materialized images: an LRU bounded in bytes. Images are
//! shared (`Arc`), so a reader holding one keeps it valid after eviction;
//! each image is built once even when many readers ask at the same moment.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

mod image;
pub use image::{FILE_THRESHOLD, HugePageFiles, Image};

/// A built image, or why it could not be built.
pub type Built = Result<Arc<Image>, String>;

struct State<K> {
    lru: lru::LruCache<K, Arc<Image>>,
    bytes: usize,
    /// Keys being built right now; others asking for them wait.
    building: HashMap<K, Arc<Slot>>,
}

#[derive(Default)]
struct Slot {
    result: Mutex<Option<Built>>,
    ready: Condvar,
}

pub struct ImageCache<K> {
    capacity: usize,
    state: Mutex<State<K>>,
}

/// Locks `mutex`, ignoring poisoning: every state behind the crate's
/// mutexes is updated in small, complete steps, so a thread that panicked
/// left nothing half-written.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<K: Hash + Eq + Clone> ImageCache<K> {
    /// A cache holding at most `capacity` bytes of images.
    pub fn new(capacity: usize) -> ImageCache<K> {
        ImageCache {
            capacity,
            state: Mutex::new(State {
                // Bounded by bytes, not entries.
                lru: lru::LruCache::unbounded(),
                bytes: 0,
                building: HashMap::new(),
            }),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        lock(&self.state).bytes
    }

    /// The cached image for `key`, if any (and marks it recently used).
    pub fn get(&self, key: &K) -> Option<Arc<Image>> {
        lock(&self.state).lru.get(key).cloned()
    }

    /// The image for `key`, built by `build` if it is not cached. Concurrent
    /// callers for the same key wait for one build. Failures are not cached.
    pub fn get_or_build<B: Into<Image>>(
        &self,
        key: &K,
        build: impl FnOnce() -> Result<B, String>,
    ) -> Built {
        let slot = {
            let mut state = lock(&self.state);
            if let Some(image) = state.lru.get(key) {
                return Ok(image.clone());
            }
            match state.building.get(key) {
                Some(slot) => Some(slot.clone()),
                None => {
                    state
                        .building
                        .insert(key.clone(), Arc::new(Slot::default()));
                    None
                }
            }
        };
        if let Some(slot) = slot {
            let mut result = lock(&slot.result);
            while result.is_none() {
                result = slot
                    .ready
                    .wait(result)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            return result
                .clone()
                .unwrap_or_else(|| Err("build vanished".into()));
        }

        let built: Built = build().map(|image| Arc::new(image.into()));
        let mut state = lock(&self.state);
        if let Ok(image) = &built {
            self.insert(&mut state, key.clone(), image.clone());
        }
        if let Some(slot) = state.building.remove(key) {
            *lock(&slot.result) = Some(built.clone());
            slot.ready.notify_all();
        }
        built
    }

    fn insert(&self, state: &mut State<K>, key: K, image: Arc<Image>) {
        let size = image.len();
        if size > self.capacity {
            // Served to its readers, never cached: it would evict everything.
            return;
        }
        if let Some(old) = state.lru.pop(&key) {
            state.bytes -= old.len();
        }
        while state.bytes + size > self.capacity {
            match state.lru.pop_lru() {
                Some((_, old)) => state.bytes -= old.len(),
                None => break,
            }
        }
        state.bytes += size;
        state.lru.put(key, image);
    }

    /// Drops every image whose key `stale` says is out of date.
    pub fn retain(&self, keep: impl Fn(&K) -> bool) {
        let mut state = lock(&self.state);
        let stale: Vec<K> = state
            .lru
            .iter()
            .filter(|(k, _)| !keep(k))
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            if let Some(old) = state.lru.pop(&key) {
                state.bytes -= old.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn bounded_in_bytes_and_lru_ordered() {
        let cache = ImageCache::new(10);
        for key in 0..3u32 {
            cache.get_or_build(&key, || Ok(vec![0; 4])).unwrap();
        }
        // 3 x 4 bytes do not fit in 10: the oldest went.
        assert_eq!(cache.bytes(), 8);
        assert!(cache.get(&0).is_none());
        assert!(cache.get(&1).is_some());
        cache.get_or_build(&3, || Ok(vec![0; 4])).unwrap();
        // 1 was used more recently than 2.
        assert!(cache.get(&2).is_none());
        assert!(cache.get(&1).is_some());
    }

    #[test]
    fn evicted_images_stay_valid_for_their_readers() {
        let cache = ImageCache::new(4);
        let held = cache.get_or_build(&1u8, || Ok(vec![7; 4])).unwrap();
        cache.get_or_build(&2u8, || Ok(vec![8; 4])).unwrap();
        assert!(cache.get(&1).is_none());
        assert_eq!(&**held, &[7; 4]);
    }

    #[test]
    fn too_large_images_are_served_but_not_kept() {
        let cache = ImageCache::new(4);
        let image = cache.get_or_build(&1u8, || Ok(vec![1; 9])).unwrap();
        assert_eq!(image.len(), 9);
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn failures_are_reported_and_not_cached() {
        let cache: ImageCache<u8> = ImageCache::new(4);
        assert_eq!(
            cache.get_or_build(&1, || Err::<Vec<u8>, _>("bad".into())),
            Err("bad".into())
        );
        assert!(cache.get_or_build(&1, || Ok(vec![1])).is_ok());
    }

    #[test]
    fn concurrent_readers_share_one_build() {
        let cache = Arc::new(ImageCache::new(1 << 20));
        let builds = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (cache, builds) = (cache.clone(), builds.clone());
                std::thread::spawn(move || {
                    cache
                        .get_or_build(&42u8, || {
                            builds.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            Ok(vec![9; 1000])
                        })
                        .unwrap()
                })
            })
            .collect();
        for thread in threads {
            assert_eq!(thread.join().unwrap().len(), 1000);
        }
        assert_eq!(builds.load(Ordering::SeqCst), 1);
    }
}
